"""Run cells on devices and put every event the runner sends into the run's store.

A cell that fails (crash, out of memory, timeout, bad model, unreachable
device) is recorded with its reason and the sweep goes on; only an interrupt
or a full results disk stops the run, and even then every finished sample is
already on disk.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from itertools import groupby

from edgebench.cells import Cell, plan_cells, shard_cells
from edgebench.errors import DiskFullError, EdgebenchError, RunnerError
from edgebench.models import LocalModel, resolve_model
from edgebench.probe import probe_with
from edgebench.results.aggregate import run_rows
from edgebench.results.store import RunStore, now_iso
from edgebench.transport import open_transport


class Observer:
    """Hooks for progress displays; the default shows nothing."""

    def model_progress(self, name):
        return None

    def push_progress(self, name):
        return None

    def cell_started(self, cell: Cell) -> None: ...

    def sample(self, cell: Cell, sample: dict) -> None: ...

    def cell_finished(self, cell: Cell, error: str | None) -> None: ...


@dataclass
class RunOutcome:
    profile: object
    store: RunStore
    rows: list[dict]
    failures: list[tuple[str, str]] = field(default_factory=list)
    status: str = "complete"


def _job(profile, cell: Cell, model_path: str) -> dict:
    engine, device = profile.engine, cell.device
    return {
        "engine": engine.name,
        "model_path": model_path,
        "test": {"n_prompt": cell.test.n_prompt, "n_gen": cell.test.n_gen, "n_depth": cell.test.n_depth},
        "repetitions": profile.repetitions,
        "warmup": profile.warmup,
        "engine_options": {**_engine_options(engine), "threads": cell.threads,
                           "binary": engine.binary or device.llama_bench},
        "telemetry": {"enabled": profile.telemetry.enabled, "interval_s": profile.telemetry.interval_s,
                      "extra_thermal_paths": list(device.telemetry.extra_thermal_paths),
                      "extra_power_paths": list(device.telemetry.extra_power_paths)},
        "limits": {"max_temp_c": device.limits.max_temp_c},
    }


def _engine_options(engine) -> dict:
    return {k: getattr(engine, k) for k in ("n_ctx", "n_batch", "n_ubatch", "type_k", "type_v", "flash_attn",
                                            "n_gpu_layers", "use_mmap")}


class CellRecorder:
    """Routes one cell's runner events into the store."""

    def __init__(self, store: RunStore, cell: Cell, observer: Observer):
        self.store, self.cell, self.observer = store, cell, observer
        self.n_tokens = cell.test.n_prompt + cell.test.n_gen

    def __call__(self, event: dict) -> None:
        kind = event.pop("event")
        if kind == "start":
            self.store.append("cells.jsonl", {"cell": self.cell.id, "state": "running", "info": event["info"],
                                              "telemetry_sources": event.get("telemetry"),
                                              "runner_rss_kb": event.get("runner_rss_kb")})
        elif kind == "telemetry":
            self.store.append("telemetry.jsonl", {"cell": self.cell.id, **event})
        elif kind == "sample":
            sample = {"cell": self.cell.id, "n_tokens": self.n_tokens, **event}
            self.store.append("samples.jsonl", sample)
            self.observer.sample(self.cell, sample)


def run_cells(profile, devices, results_root, observer: Observer | None = None,
              shard: tuple[int, int] | None = None, parallel: int = 1) -> RunOutcome:
    observer = observer or Observer()
    cells = plan_cells(profile, devices)
    if shard:
        cells = shard_cells(cells, *shard)
    store = RunStore.create(results_root, {
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "profile": profile.to_dict(),
        "devices": {d.name: d.to_dict() for d in devices if any(c.device == d for c in cells)},
        "cells": [{"id": c.id, "device": c.device.name, "model": c.model.name, "test": c.test.name,
                   "n_threads": c.threads} for c in cells],
    })
    outcome = RunOutcome(profile=profile, store=store, rows=[])
    cancel = threading.Event()
    groups = [(device, list(group)) for device, group in groupby(cells, key=lambda c: c.device)]
    try:
        # one worker per device at a time, up to `parallel`; cells on a device run one by one
        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="device") as pool:
            futures = [pool.submit(_run_device, profile, device, group, store, observer, outcome, cancel)
                       for device, group in groups]
            try:
                while not all(f.done() for f in futures):
                    wait(futures, timeout=0.5)  # short waits keep the main thread open to Ctrl-C
            except KeyboardInterrupt:
                cancel.set()  # every transport stops its runner and returns
                wait(futures)
                raise
            for future in futures:
                future.result()  # a disk-full error ends the run here
    except KeyboardInterrupt:
        outcome.status = "interrupted"
        raise
    finally:
        outcome.rows = run_rows(store.path)
        if outcome.status == "complete" and outcome.failures:
            outcome.status = "failed"
        store.finish(outcome.status, outcome.rows)
    return outcome


def _cell_facts(profile, cell: Cell) -> dict:
    return {"cell": cell.id, "device": cell.device.name, "device_class": cell.device.device_class,
            "engine": profile.engine.name, "model": cell.model.name, "test": cell.test.name,
            "n_prompt": cell.test.n_prompt, "n_gen": cell.test.n_gen, "n_depth": cell.test.n_depth,
            "n_threads": cell.threads, "engine_options": _engine_options(profile.engine)}


def _fail(store, observer, outcome, cell: Cell, error: EdgebenchError) -> None:
    details = {"kind": error.kind, "message": str(error)}
    if isinstance(error, RunnerError):
        details.update(exit_code=error.exit_code, signal=error.signal, stderr_tail=error.stderr_tail)
    # a cell can fail before it starts (device unreachable, model missing): say what it was
    store.append("cells.jsonl", {**_cell_facts(outcome.profile, cell), "state": "failed", "ended": now_iso(),
                                 "error": details})
    outcome.failures.append((cell.id, str(error)))
    observer.cell_finished(cell, str(error))


def _run_device(profile, device, cells, store, observer, outcome, cancel: threading.Event) -> None:
    def fail_all(error):
        for cell in cells:
            _fail(store, observer, outcome, cell, error)

    try:
        transport = open_transport(device)
    except EdgebenchError as error:
        fail_all(error)
        return
    transport.cancel = cancel
    with transport:
        try:
            runner = transport.install_runner()
            # what the device is, stored with the run: results are only comparable in their context
            store.append("devices.jsonl", probe_with(transport, runner))
        except DiskFullError:
            raise
        except EdgebenchError as error:
            fail_all(error)
            return
        for model_ref, model_cells in groupby(cells, key=lambda c: c.model):
            model_cells = list(model_cells)
            try:
                model = resolve_model(model_ref, progress=observer.model_progress(model_ref.name))
                remote = transport.push_model(str(model.path), model.sha256,
                                              progress=observer.push_progress(model.name)).path
            except DiskFullError:
                raise
            except EdgebenchError as error:
                for cell in model_cells:
                    _fail(store, observer, outcome, cell, error)
                continue
            for cell in model_cells:
                if cancel.is_set():
                    return
                _run_cell(profile, cell, model, remote, transport, runner, store, observer, outcome)


def _run_cell(profile, cell, model: LocalModel, remote, transport, runner, store, observer, outcome) -> None:
    store.append("cells.jsonl", {**_cell_facts(profile, cell), "state": "started", "started": now_iso(),
                                 "model_filename": model.path.name, "model_sha256": model.sha256})
    observer.cell_started(cell)
    try:
        done = transport.run_runner(runner, "run", _job(profile, cell, remote), profile.timeout_s,
                                    CellRecorder(store, cell, observer))
    except DiskFullError:
        raise  # nothing more can be recorded: stop the run rather than fail every cell
    except EdgebenchError as error:
        _fail(store, observer, outcome, cell, error)
        return
    except KeyboardInterrupt:
        store.append("cells.jsonl", {"cell": cell.id, "state": "interrupted", "ended": now_iso(),
                                     "error": {"kind": "interrupted", "message": "controller interrupted"}})
        raise
    store.append("cells.jsonl", {"cell": cell.id, "state": "done", "ended": now_iso(),
                                 "info": done.get("info") or {}, "peak_rss_kb": done.get("peak_rss_kb")})
    observer.cell_finished(cell, None)
