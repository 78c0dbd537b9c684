"""`run` with a database configured loads the run as it goes, inserting after every cell only what is new.

When the run starts, its directory is loaded as `db load` loads one (a new run: its header; a resumed
run: what it holds so far). After every cell, what the run appended since the last cell goes in, taken
from the run's records in memory (results/run_records.py): the new lines as the next part of their
files, and the row and samples of each cell that got a record, replacing that cell's earlier ones. The
cost of a cell is its own records, not the run's so far. When the run ends, its last header goes in and
each file's parts are joined into one, so the database holds exactly what `db load` of the finished
directory gives. A failed load is reported once and the run goes on (the directory is what counts).
"""

from __future__ import annotations

import threading

from edgebench.db.connection import connect
from edgebench.db.load import forget_cells, insert_cells, load_run, run_row
from edgebench.db.schema import insert
from edgebench.errors import EdgebenchError
from edgebench.results.model import converted_header
from edgebench.results.records import CellStart, Sample
from edgebench.results.store import HEADER
from edgebench.sweep.device_worker import Observer


class DbFeed(Observer):
    """Wraps the display's observer (`inner`), passing every event on."""

    def __init__(self, url, inner: Observer):
        self.url, self.inner = url, inner
        self.run_dir = None
        self.records = None  # the run in memory, from run_started
        self.error: str | None = None
        self._lock = threading.Lock()
        self._db = None
        self._header_text: str | None = None  # run.json as the database holds it
        self._parts: dict[str, int] = {}  # each jsonl file's last part in the database

    def _guarded(self, action) -> None:
        if self.records is None or self.error:
            return
        with self._lock:
            try:
                if self._db is None:
                    self._db = connect(self.url)
                action(self._db)
            except (EdgebenchError, OSError) as exc:
                self.error = str(exc)
            except Exception as exc:  # a database driver's own error: the run must go on
                self.error = f"{type(exc).__name__}: {exc}"

    def _load_all(self, db) -> None:
        _, self._header_text, _ = self.records.take_new()  # nothing runs yet: the directory is these records
        load_run(db, self.run_dir)

    def _load_new(self, db) -> None:
        header, header_text, new = self.records.take_new()
        lines: dict[str, list[str]] = {}
        cells: dict[str, None] = {}  # the cells that got a record, in order
        for name, line, record in new:
            lines.setdefault(name, []).append(line + "\n")
            if name in (CellStart.FILE, Sample.FILE):
                cells[record.cell] = None
        attempts = [found for found in map(self.records.attempt, cells) if found is not None]
        run_id = header.run_id
        with db.transaction():
            if header_text != self._header_text:
                db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM run_files WHERE run_id = ? AND name = ?", (run_id, HEADER))
                insert(db, "runs", [run_row(converted_header(header))])  # as `db load` stores it
                insert(db, "run_files", [(run_id, HEADER, 0, header_text)])
            parts = dict(self._parts)
            for name, added in lines.items():
                parts[name] = parts.get(name, 0) + 1
                insert(db, "run_files", [(run_id, name, parts[name], "".join(added))])
            forget_cells(db, run_id, list(cells))
            insert_cells(db, run_id, attempts)
        self._header_text, self._parts = header_text, parts

    def _finish(self, db) -> None:
        self._load_new(db)
        run_id = self.records.header.run_id
        with db.transaction():
            for name, last in self._parts.items():
                if last:
                    found = db.query("SELECT content FROM run_files WHERE run_id = ? AND name = ? ORDER BY part",
                                     (run_id, name))
                    db.execute("DELETE FROM run_files WHERE run_id = ? AND name = ?", (run_id, name))
                    insert(db, "run_files", [(run_id, name, 0, "".join(content for (content,) in found))])
        self._parts = {}

    def close(self) -> None:
        self._guarded(self._finish)
        if self._db is not None:
            self._db.close()
            self._db = None

    def run_started(self, run_dir, records) -> None:
        self.run_dir, self.records = run_dir, records
        records.follow()
        self._guarded(self._load_all)
        self.inner.run_started(run_dir, records)

    def cell_finished(self, cell, error) -> None:
        self.inner.cell_finished(cell, error)
        self._guarded(self._load_new)

    def model_progress(self, name):
        return self.inner.model_progress(name)

    def push_progress(self, device, name):
        return self.inner.push_progress(device, name)

    def evicted(self, device, evicted) -> None:
        self.inner.evicted(device, evicted)

    def device_state(self, device, state) -> None:
        self.inner.device_state(device, state)

    def note(self, text) -> None:
        self.inner.note(text)

    def temperature(self, device, temp_c) -> None:
        self.inner.temperature(device, temp_c)

    def cell_started(self, cell) -> None:
        self.inner.cell_started(cell)

    def sample(self, cell, sample) -> None:
        self.inner.sample(cell, sample)
