"""`run` with a database configured loads the run as it goes: after every cell, and once more at the end.

Each load replaces the run's earlier load (db/load.py), so the database always holds the run as its
directory stands; a failed load is reported once and the run goes on (the directory is what counts).
"""

from __future__ import annotations

import threading

from edgebench.db.connection import connect
from edgebench.db.load import load_run
from edgebench.errors import EdgebenchError
from edgebench.sweep.device_worker import Observer


class DbFeed(Observer):
    """Wraps the display's observer (`inner`), passing every event on."""

    def __init__(self, url, inner: Observer):
        self.url, self.inner = url, inner
        self.run_dir = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._db = None

    def load(self) -> None:
        if self.run_dir is None or self.error:
            return
        with self._lock:
            try:
                if self._db is None:
                    self._db = connect(self.url)
                load_run(self._db, self.run_dir)
            except (EdgebenchError, OSError) as exc:
                self.error = str(exc)
            except Exception as exc:  # a database driver's own error: the run must go on
                self.error = f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        self.load()
        if self._db is not None:
            self._db.close()
            self._db = None

    def run_started(self, run_dir) -> None:
        self.run_dir = run_dir
        self.inner.run_started(run_dir)

    def cell_finished(self, cell, error) -> None:
        self.inner.cell_finished(cell, error)
        self.load()

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
