"""A run directory: created once, appended to record by record, never overwritten.

    results/<run-id>/run.json          what was run, on what, by which version (rewritten atomically)
    results/<run-id>/devices.jsonl     each device's probed facts (CPU, memory, OS, engines, sensors)
    results/<run-id>/cells.jsonl       each cell's start (engine and model facts) and its end (ok or failed)
    results/<run-id>/samples.jsonl     one line per timed repetition
    results/<run-id>/telemetry.jsonl   every telemetry reading, tagged with its cell
    results/<run-id>/summary.json      the aggregated table, written when the run ends

Every jsonl line is flushed and fsynced before the next one is taken, so a
killed controller loses at most the line it was writing; readers skip a torn
last line.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import sys
import threading
from pathlib import Path

from edgebench import __version__
from edgebench.errors import DiskFullError, ResultsError

SCHEMA_VERSION = 1
RUN_KIND = "edgebench-run"
FILES = ("cells.jsonl", "samples.jsonl", "telemetry.jsonl")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


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
    def __init__(self, path: Path):
        self.path = Path(path)
        self._files = {}
        self._lock = threading.Lock()  # devices run in parallel threads

    # -- creating --------------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, meta: dict) -> "RunStore":
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
        store = cls(path)
        store.meta = {"schema_version": SCHEMA_VERSION, "kind": RUN_KIND, "run_id": path.name,
                      "edgebench_version": __version__, "created": now_iso(),
                      "command": sys.argv, "status": "running", **meta}
        store.write_meta()
        return store

    @classmethod
    def open(cls, path: Path) -> "RunStore":
        store = cls(path)
        store.meta = read_meta(Path(path))
        return store

    @property
    def run_id(self) -> str:
        return self.path.name

    def write_meta(self) -> None:
        def write():
            partial = self.path / "run.json.partial"
            with open(partial, "w") as f:
                json.dump(self.meta, f, indent=2, default=str)
                f.flush()
                os.fsync(f.fileno())
            partial.replace(self.path / "run.json")
        _write_guard(write)

    def finish(self, status: str, summary: list[dict]) -> None:
        self.meta.update(status=status, finished=now_iso())
        self.write_meta()

        def write():
            with open(self.path / "summary.json", "w") as f:
                json.dump({"schema_version": SCHEMA_VERSION, "run_id": self.run_id, "rows": summary}, f,
                          indent=2, default=str)
        _write_guard(write)
        self.close()

    # -- appending -------------------------------------------------------------------------------

    def append(self, name: str, record: dict) -> None:
        with self._lock:
            self._append(name, record)

    def _append(self, name: str, record: dict) -> None:
        def write():
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = open(self.path / name, "a")
            f.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _write_guard(write)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


def read_meta(path: Path) -> dict:
    meta_file = Path(path) / "run.json"
    if not meta_file.is_file():
        raise ResultsError(f"{path} is not an edgebench run directory (no run.json)")
    try:
        meta = json.loads(meta_file.read_text())
    except ValueError as exc:
        raise ResultsError(f"{meta_file} is not valid JSON: {exc}") from exc
    if meta.get("kind") != RUN_KIND:
        raise ResultsError(f"{meta_file} is not an edgebench run")
    if meta.get("schema_version", 0) > SCHEMA_VERSION:
        raise ResultsError(f"{meta_file} has schema version {meta['schema_version']}; this edgebench "
                           f"reads up to {SCHEMA_VERSION}: upgrade edgebench")
    return meta


def read_jsonl(path: Path) -> list[dict]:
    """Read records, skipping a torn last line left by a killed writer."""
    if not path.is_file():
        return []
    records = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines):
                break
            raise ResultsError(f"{path}:{number}: corrupt record")
    return records
