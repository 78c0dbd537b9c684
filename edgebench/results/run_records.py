"""A run's records held in memory as its store appends them, so the controller never reads back what it wrote.

The store (results/store.py) hands every record here as the line it wrote, read back the way a
reader of the file would read it: what the run computes from memory (its rows, which cells
finished, what `run --db` inserts) is what a later reader computes from the directory.

It holds the header, the device probes, the cell records and the samples; telemetry stays in its
file only (the rows use the samples' windows), so a long run with dense telemetry costs no memory.
A follower (db/feed.py) can ask for the lines appended since it last asked, to pass on only those.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.results.header import RunHeader
from edgebench.results.model import CellResult, ResultsBuilder, RunResults
from edgebench.results.records import JSONL_READERS, CellStart, DeviceProbe, Sample

if TYPE_CHECKING:
    from edgebench.results.records import CellRecord, JsonlRecord


class RunRecords:
    def __init__(self, header: RunHeader, header_text: str | None = None):
        self.header, self.header_text = header, header_text  # run.json, as written
        self.devices: list[DeviceProbe] = []
        self.cells: list[CellRecord] = []
        self.samples: list[Sample] = []
        # the result model of what was kept, remade cell by cell as records arrive (results/model.py)
        self._results = ResultsBuilder(header)
        self._new: list[tuple[str, str, JsonlRecord]] | None = None  # kept only while followed
        self._lock = threading.Lock()

    def add(self, name: str, line: str) -> JsonlRecord:
        """The record a jsonl line of file `name` holds (the line as written, without its newline)."""
        record = JSONL_READERS[name](json.loads(line))
        self._keep(name, line, record)
        return record

    def _keep(self, name: str, line: str, record: JsonlRecord) -> None:
        with self._lock:
            if name == CellStart.FILE:
                self.cells.append(record)
            elif name == Sample.FILE:
                self.samples.append(record)
            elif name == DeviceProbe.FILE:
                self.devices.append(record)
            if name in (CellStart.FILE, Sample.FILE, DeviceProbe.FILE):
                self._results.add(record)
            if self._new is not None:  # telemetry too: the database keeps every file
                self._new.append((name, line, record))

    def set_header(self, header: RunHeader, text: str) -> None:
        with self._lock:
            self.header, self.header_text = header, text
            self._results.set_header(header)

    # -- what the run computes from them -----------------------------------------------------------

    def results(self) -> RunResults:
        """The run as the result model, as a reader of the directory would load it now."""
        with self._lock:
            return self._results.results()

    def attempts(self) -> dict[str, CellResult]:
        """Per recorded cell (in the order cells first appear), its latest attempt with its samples."""
        return {cell.cell: cell for cell in self.results().cells}

    def attempt(self, cell: str) -> CellResult | None:
        """One cell's latest attempt."""
        return self.results().cell(cell)

    def finished(self) -> set[str]:
        """The cells whose latest attempt was measured."""
        return {cell for cell, attempt in self.attempts().items() if attempt.finished}

    # -- following ---------------------------------------------------------------------------------

    def follow(self) -> None:
        """Keep the lines appended from now on until `take_new` hands them over."""
        with self._lock:
            if self._new is None:
                self._new = []

    def take_new(self) -> tuple[RunHeader, str | None, list[tuple[str, str, JsonlRecord]]]:
        """The header and run.json's text as they stand, and every (file, line, record) appended since
        the last call."""
        with self._lock:
            new, self._new = self._new or [], []
            return self.header, self.header_text, new

    # -- a run that goes on ------------------------------------------------------------------------

    @classmethod
    def read(cls, path: Path, header: RunHeader) -> RunRecords:
        """The records of an existing run directory (one read, when a stopped run is resumed)."""
        from edgebench.results.store import HEADER, records_with_lines

        records = cls(header, (Path(path) / HEADER).read_text())
        for name in (DeviceProbe.FILE, CellStart.FILE, Sample.FILE):
            for line, record in records_with_lines(Path(path), name):
                records._keep(name, line, record)
        return records
