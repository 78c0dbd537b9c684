"""Run a profile's cells on devices and put every event the runner sends into the run's store.

A cell that fails (crash, out of memory, timeout, bad model, unreachable
device) is recorded with its reason and the sweep goes on; only an interrupt
or a full results disk stops the run, and even then every finished sample is
already on disk. `resume_run` finishes a stopped run in its own directory.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from edgebench.config import parse_device, parse_profile
from edgebench.errors import EdgebenchError, ResultsError
from edgebench.quality.prepare import QualityFiles
from edgebench.results.aggregate import run_rows
from edgebench.results.header import PlannedCell
from edgebench.results.model import load, load_header
from edgebench.results.store import HEADER, RunStore
from edgebench.run.cells import Cell, plan_cells, shard_cells
from edgebench.run.device_worker import DeviceWorker, Observer

__all__ = ["Observer", "RunInterrupted", "RunOutcome", "SharedRun", "resume_run", "run_cells"]


@dataclass
class RunOutcome:
    profile: object
    store: RunStore
    rows: list[dict]
    failures: list[tuple[str, str]] = field(default_factory=list)
    status: str = "complete"


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, carrying what was measured so far: the caller names the run directory
    that `run --resume` finishes."""

    def __init__(self, outcome: RunOutcome):
        super().__init__()
        self.outcome = outcome


class SharedRun:
    """What the device workers share: the store, the observer, the cancel event, attempt numbers."""

    def __init__(self, profile, store: RunStore, observer: Observer, wait_for_lock: bool,
                 attempts: dict[str, int]):
        self.profile, self.store, self.observer = profile, store, observer
        self.wait_for_lock = wait_for_lock
        self.variants: dict[str, object] = {}
        self.cancel = threading.Event()
        self.failures: list[tuple[str, str]] = []
        self._attempts = dict(attempts)
        self._lock = threading.Lock()
        self._quality: dict[object, QualityFiles] = {}
        observer.run_started(store.path)

    def profile_for(self, cell: Cell):
        """The profile a cell runs with: an A/B run gives each variant its own."""
        return self.variants[cell.variant] if cell.variant else self.profile

    def quality_files(self, options) -> QualityFiles:
        """The quality tests' files for a `quality:` block, built once for every device that needs them."""
        with self._lock:
            if options not in self._quality:
                self._quality[options] = QualityFiles(options)
            return self._quality[options]

    def next_attempt(self, cell: Cell) -> int:
        with self._lock:
            self._attempts[cell.id] = self._attempts.get(cell.id, 0) + 1
            return self._attempts[cell.id]

    def failed(self, cell: Cell, error: EdgebenchError) -> None:
        with self._lock:
            self.failures.append((cell.id, str(error)))


def run_cells(profile, devices, results_root, observer: Observer | None = None,
              shard: tuple[int, int] | None = None, parallel: int = 1, wait_for_lock: bool = True) -> RunOutcome:
    cells = plan_cells(profile, devices)
    if shard:
        cells = shard_cells(cells, *shard)
    store = RunStore.create(results_root, profile=profile.to_dict(),
                            devices={d.name: d.to_dict() for d in devices if any(c.device == d for c in cells)},
                            cells=[PlannedCell.of(c) for c in cells], shard=f"{shard[0]}/{shard[1]}" if shard else None)
    return _execute(SharedRun(profile, store, observer or Observer(), wait_for_lock, {}), cells, parallel)


def stored_plan(run_dir: Path) -> tuple[object, list[Cell]]:
    """The profile, devices and cells a run was started with, rebuilt from its run.json."""
    header = load_header(run_dir)  # its profile as this edgebench writes it
    source = str(Path(run_dir) / HEADER)
    def settings(stored: dict) -> str:
        return json.dumps({k: v for k, v in stored.items() if k != "source"})  # JSON is YAML

    for part in ("profile", "devices"):
        if not isinstance(getattr(header, part), dict):
            raise ResultsError(f"{source} does not describe a run that can be resumed: missing '{part}'")
    try:
        profile = parse_profile(settings(dict(header.profile)), file=source)
        devices = [parse_device(settings(d), file=source) for d in header.devices.values()]
    except (KeyError, AttributeError) as exc:
        raise ResultsError(f"{source} does not describe a run that can be resumed: missing {exc}") from exc
    wanted = {c.id for c in header.cells}
    return profile, [c for c in plan_cells(profile, devices) if c.id in wanted]


def unfinished_cells(run_dir: Path, cells: list[Cell]) -> tuple[list[Cell], dict[str, int]]:
    """Cells whose latest attempt did not finish (failed, interrupted, never started), and the
    number of attempts each cell has had so far."""
    latest = {cell.cell: cell for cell in load(run_dir).cells}
    todo = [c for c in cells if c.id not in latest or not latest[c.id].finished]
    return todo, {cell_id: found.attempt for cell_id, found in latest.items()}


def resume_run(run_dir: Path, observer: Observer | None = None, parallel: int = 1,
               wait_for_lock: bool = True) -> RunOutcome:
    profile, cells = stored_plan(run_dir)
    store = RunStore.open(run_dir)
    todo, attempts = unfinished_cells(run_dir, cells)
    store.resume(len(todo))
    return _execute(SharedRun(profile, store, observer or Observer(), wait_for_lock, attempts), todo, parallel)


def _execute(run: SharedRun, cells: list[Cell], parallel: int) -> RunOutcome:
    outcome = RunOutcome(profile=run.profile, store=run.store, rows=[])
    groups = [(device, list(group)) for device, group in groupby(cells, key=lambda c: c.device)]
    try:
        # one worker per device at a time, up to `parallel`; cells on a device run one by one
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="device") as pool:
            futures = [pool.submit(DeviceWorker(run, device, group).work) for device, group in groups]
            try:
                while not all(f.done() for f in futures):
                    wait(futures, timeout=0.5)  # short waits keep the main thread open to Ctrl-C
            except KeyboardInterrupt:
                run.cancel.set()  # every transport stops its runner and returns
                wait(futures)
                raise
            for future in futures:
                future.result()  # a disk-full error ends the run here
    except KeyboardInterrupt:
        outcome.status = "interrupted"
        raise RunInterrupted(outcome) from None  # the rows are filled in below, before it reaches the caller
    finally:
        outcome.failures = run.failures
        outcome.rows = run_rows(run.store.path)
        if outcome.status == "complete" and not _all_finished(run.store):
            outcome.status = "failed"
        run.store.finish(outcome.status, outcome.rows)
    return outcome


def _all_finished(store: RunStore) -> bool:
    planned = {c.id for c in store.header.cells}
    finished = {cell.cell for cell in load(store.path).cells if cell.finished}
    return planned <= finished
