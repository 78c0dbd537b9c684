"""A run directory: created once, appended to record by record, never overwritten.

    results/<run-id>/run.json          the RunHeader (rewritten atomically when the run ends or resumes)
    results/<run-id>/devices.jsonl     DeviceProbe records
    results/<run-id>/cells.jsonl       CellStart, CellRunning and CellEnd records of every attempt
    results/<run-id>/samples.jsonl     Sample records, one per timed repetition
    results/<run-id>/telemetry.jsonl   Telemetry records
    results/<run-id>/summary.json      the aggregated table, written when the run ends

What each record holds, and its version, is results/records.py's; this module puts records in their
files and reads them back, and nothing else touches the files (results/model.py's `load` makes the
result model of what it reads). What a store appends is also kept in memory (`store.records`,
results/run_records.py, which keeps the result model of it): the run that writes a directory never
reads it back. Every jsonl line is flushed and
fsynced before the next one is taken, so a killed controller loses at most the line it was writing;
readers skip a torn last line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

from edgebench.errors import DiskFullError, ResultsError
from edgebench.outputs import write_whole
from edgebench.results.header import SCHEMA_VERSION, AbDesign, PlannedCell, RunHeader
from edgebench.results.records import (
    JSONL_READERS,
    CellRecord,
    CellStart,
    DeviceProbe,
    JsonlRecord,
    RecordError,
    Sample,
    Telemetry,
)
from edgebench.results.run_records import RunRecords

HEADER = "run.json"
SUMMARY = "summary.json"


def _write_guard(action):
    """Turn ENOSPC into a DiskFullError that says what was kept."""
    try:
        return action()
    except OSError as exc:
        if exc.errno == 28:
            raise DiskFullError(f"disk full while writing results: {exc.filename or ''}; "
                                "everything recorded before this point is kept") from exc
        raise


class RunStore:
    def __init__(self, path: Path, header: RunHeader, records: RunRecords | None = None):
        self.path = Path(path)
        self.records = records or RunRecords(header)
        self._files = {}
        self._lock = threading.Lock()  # devices run in parallel threads

    # -- creating --------------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, *, profile: Mapping, devices: Mapping[str, Mapping],
               cells: Sequence[PlannedCell] = (), shard: str | None = None, ab: AbDesign | None = None) -> RunStore:
        """A new run directory under root, its header saying what the run sets out to measure."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for _ in range(100):
            path = root / f"{stamp}-{secrets.token_hex(2)}"
            try:
                path.mkdir()  # exclusive: two controllers never share a directory
                break
            except FileExistsError:
                continue
        else:
            raise ResultsError(f"could not make a new run directory under {root}")
        store = cls(path, RunHeader(run_id=path.name, shard=shard, profile=profile, devices=devices,
                                    cells=tuple(cells), ab=ab))
        store.write_header()
        return store

    @classmethod
    def open(cls, path: Path) -> RunStore:
        """An existing run directory, its records read once, to go on appending to it."""
        header = read_header(Path(path))
        return cls(path, header, RunRecords.read(path, header))

    @property
    def header(self) -> RunHeader:
        return self.records.header

    @property
    def run_id(self) -> str:
        return self.path.name

    def write_header(self, header: RunHeader | None = None) -> None:
        """Write the header (this store's, or a new one), and keep it as a reader of run.json reads it."""
        text = write_header(self.path, header or self.header)
        self.records.set_header(RunHeader.from_json(json.loads(text)), text)

    def resume(self, n_cells: int) -> None:
        """The run goes on in this directory: running again, and the resume noted in its header."""
        self.write_header(self.header.resuming(n_cells))

    def record_place(self, device: str, where: Mapping) -> None:
        """Where a shared device ran (a labgrid place), into run.json: `devices release` and
        `run --resume` read it back."""
        with self._lock:
            self.write_header(self.header.placed(device, where))

    def finish(self, status: str, summary: list[dict]) -> None:
        self.write_header(self.header.ended(status))
        _write_guard(lambda: write_summary(self.path, self.run_id, summary))
        self.close()

    # -- appending -------------------------------------------------------------------------------

    def append(self, record: JsonlRecord) -> None:
        """One record, into the file its kind lives in."""
        line = json.dumps(record.to_json(), separators=(",", ":"), default=str)
        with self._lock:
            _write_guard(lambda: self._write(record.FILE, line + "\n"))
            self.records.add(record.FILE, line)

    def _write(self, name: str, line: str) -> None:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = open(self.path / name, "a")
        f.write(line)
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def write_header(path: Path, header: RunHeader) -> str:
    """Write run.json atomically; the text written."""
    text = json.dumps(header.to_json(), indent=2, default=str)
    _write_guard(lambda: write_whole(Path(path) / HEADER, text, sync=True))
    return text


def write_summary(path: Path, run_id: str, rows: list[dict]) -> None:
    with open(Path(path) / SUMMARY, "w") as f:
        json.dump({"schema_version": SCHEMA_VERSION, "run_id": run_id, "rows": rows}, f, indent=2, default=str)


# -- reading -------------------------------------------------------------------------------------


def read_header(path: Path) -> RunHeader:
    header_file = Path(path) / HEADER
    if not header_file.is_file():
        raise ResultsError(f"{path} is not an edgebench run directory (no {HEADER})")
    try:
        data = json.loads(header_file.read_text())
    except ValueError as exc:
        raise ResultsError(f"{header_file} is not valid JSON: {exc}") from exc
    try:
        return RunHeader.from_json(data)
    except RecordError as exc:
        raise ResultsError(f"{header_file} {exc}") from exc
    except (TypeError, AttributeError) as exc:
        raise ResultsError(f"{header_file} is not a run header this edgebench can read: {exc}") from exc


def _lines(path: Path) -> Iterator[tuple[int, str, object]]:
    """(line number, text, parsed JSON) of each line, skipping a torn last line left by a killed writer."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            if number == len(lines):
                return
            raise ResultsError(f"{path}:{number}: corrupt record") from None
        yield number, line, data


def _records(path: Path, parse: Callable) -> Iterator[tuple[str, JsonlRecord]]:
    for number, line, data in _lines(path):
        try:
            yield line, parse(data)
        except (RecordError, KeyError, TypeError, AttributeError) as exc:
            raise ResultsError(f"{path}:{number}: {exc}") from None


def read_records(path: Path, name: str) -> list[JsonlRecord]:
    """The records of one jsonl file of a run directory."""
    return [record for _, record in records_with_lines(path, name)]


def records_with_lines(path: Path, name: str) -> Iterator[tuple[str, JsonlRecord]]:
    """(line as stored, record) of one jsonl file of a run directory."""
    return _records(Path(path) / name, JSONL_READERS[name])


def read_cell_records(path: Path) -> list[CellRecord]:
    return read_records(path, CellStart.FILE)


def read_samples(path: Path) -> list[Sample]:
    return read_records(path, Sample.FILE)


def read_telemetry(path: Path) -> list[Telemetry]:
    return read_records(path, Telemetry.FILE)


def read_device_probes(path: Path) -> list[DeviceProbe]:
    return read_records(path, DeviceProbe.FILE)


def copy_records(sources: Sequence[Path], dest: Path) -> None:
    """Every record of the sources' jsonl files into dest's, source after source. Each is read as its
    kind (a record this edgebench cannot read stops the copy) and written as it was stored: records
    keep the version they were written with."""
    for name, parse in JSONL_READERS.items():
        with open(Path(dest) / name, "w") as out:
            for source in sources:
                for line, _record in _records(Path(source) / name, parse):
                    out.write(line + "\n")
