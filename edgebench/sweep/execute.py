"""Run a profile's cells on devices and put every event the runner sends into the run's store.

A cell that fails (crash, out of memory, timeout, bad model, unreachable
device) is recorded with its reason and the sweep goes on; only an interrupt
or a full results disk stops the run, and even then every finished sample is
already on disk. `resume_run` finishes a stopped run in its own directory.

Cells are planned once (`plan_run`, `plan_resume`) and the plan is passed down; what the run appends
is kept in memory by its store, from which its rows are computed at the end.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Mapping

from edgebench.config import parse_device, parse_profile
from edgebench.errors import EdgebenchError, ResultsError
from edgebench.quality.prepare import QualityFiles
from edgebench.results.aggregate import attempt_rows
from edgebench.results.header import PlannedCell
from edgebench.results.model import converted_header
from edgebench.results.store import HEADER, RunStore
from edgebench.sweep.cells import Cell, plan_cells, shard_cells
from edgebench.sweep.device_worker import DeviceWorker, Observer
from edgebench.transport import settle_claim

__all__ = ["Observer", "RunInterrupted", "RunOutcome", "RunPlan", "SharedRun", "plan_resume", "plan_run", "resume_run",
           "run_cells", "run_plan"]


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
        observer.run_started(store.path, store.records)

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


@dataclass(frozen=True)
class RunPlan:
    """What a run measures, planned once: the profile and the cells to run now. A new run also has the
    devices its header names and its shard; a resumed run has its store (its records read) and the number
    of attempts each cell has had."""
    profile: object
    cells: tuple[Cell, ...]
    devices: tuple = ()
    shard: tuple[int, int] | None = None
    store: RunStore | None = None
    attempts: Mapping[str, int] = field(default_factory=dict)
    planned: tuple[Cell, ...] = ()  # a resumed run's cells, finished or not: the devices it may hold


def plan_run(profile, devices, shard: tuple[int, int] | None = None) -> RunPlan:
    cells = plan_cells(profile, devices)
    if shard:
        cells = shard_cells(cells, *shard)
    return RunPlan(profile, tuple(cells), tuple(d for d in devices if any(c.device == d for c in cells)), shard)


def plan_resume(run_dir: Path) -> RunPlan:
    """A stopped run's unfinished cells (failed, interrupted, never started), with the profile and devices
    it was started with."""
    store = RunStore.open(run_dir)
    profile, cells = stored_plan(converted_header(store.header), Path(run_dir) / HEADER)
    latest = store.records.attempts()
    todo = tuple(c for c in cells if c.id not in latest or not latest[c.id].finished)
    return RunPlan(profile, todo, store=store,
                   attempts={cell_id: found.attempt for cell_id, found in latest.items()}, planned=tuple(cells))


def run_plan(plan: RunPlan, results_root: Path | None = None, observer: Observer | None = None,
             parallel: int = 1, wait_for_lock: bool = True) -> RunOutcome:
    """Measure a plan: a new run in a new directory under results_root, or a resumed one in its own."""
    observer = observer or Observer()
    store = plan.store
    if store is None:
        shard = plan.shard
        store = RunStore.create(results_root, profile=plan.profile.to_dict(),
                                devices={d.name: d.to_dict() for d in plan.devices},
                                cells=[PlannedCell.of(c) for c in plan.cells],
                                shard=f"{shard[0]}/{shard[1]}" if shard else None)
    else:
        for note in settle_places(store.header, plan.planned, plan.cells):
            observer.note(note)
        store.resume(len(plan.cells))
    shared = SharedRun(plan.profile, store, observer, wait_for_lock, dict(plan.attempts))
    return _execute(shared, list(plan.cells), parallel)


def run_cells(profile, devices, results_root, observer: Observer | None = None,
              shard: tuple[int, int] | None = None, parallel: int = 1, wait_for_lock: bool = True) -> RunOutcome:
    return run_plan(plan_run(profile, devices, shard), results_root, observer, parallel, wait_for_lock)


def resume_run(run_dir: Path, observer: Observer | None = None, parallel: int = 1,
               wait_for_lock: bool = True) -> RunOutcome:
    return run_plan(plan_resume(run_dir), None, observer, parallel, wait_for_lock)


def stored_plan(header, source: Path) -> tuple[object, list[Cell]]:
    """The profile, devices and cells a run was started with, rebuilt from its header (`source`, its run.json)."""
    source = str(source)

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


def settle_places(header, cells, todo) -> list[str]:
    """What a stopped run may have left held on shared devices (labgrid places, in its header): taken
    over for the devices with cells still to run, released for the others; a sentence for each."""
    devices = {c.device.name: c.device for c in cells}
    needed = {c.device.name for c in todo}
    notes = []
    for name, where in header.places.items():
        if name not in devices:
            continue
        try:
            note = settle_claim(devices[name], where, name in needed)
        except EdgebenchError as error:
            note = f"{name}: could not check place {where.get('place')}: {error}"
        if note:
            notes.append(note)
    return notes


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
        # from the records the run kept as it appended them: it never reads its own files back
        records = run.store.records
        outcome.failures = run.failures
        outcome.rows = attempt_rows(records.attempts().values())
        if outcome.status == "complete" and not {c.id for c in records.header.cells} <= records.finished():
            outcome.status = "failed"
        run.store.finish(outcome.status, outcome.rows)
    return outcome
