"""One device's share of a run: connect, lock, cool down, measure each cell, recover.

A worker owns its device for the run: it holds the device lock, pushes each
model once and runs the device's cells one at a time. Transient failures (a
dropped connection, a device that stops answering) are retried with backoff
on a fresh connection; each try is a new *attempt* of the cell, recorded
beside the earlier ones, so nothing measured is ever overwritten. A device
that stays unreachable fails its remaining cells and the other devices go on.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from itertools import groupby

from edgebench.config.fields import to_plain
from edgebench.errors import DiskFullError, EdgebenchError, RunnerError
from edgebench.facts.device_probe import PROBE_TIMEOUT_S, probe_with
from edgebench.facts.stored import recall
from edgebench.models.resolve import resolve_model
from edgebench.results.records import (
    CellEnd,
    CellError,
    CellFacts,
    CellRunning,
    CellStart,
    CoolDown,
    DeviceProbe,
    QualityScores,
    Sample,
    Telemetry,
)
from edgebench.runner.job import make_job
from edgebench.runner.telemetry.thermal import hottest
from edgebench.sweep.cells import Cell
from edgebench.sweep.cores import CoresError, place_on_cores
from edgebench.transport import claim, let_go, open_transport
from edgebench.transport.device_lock import DeviceLock
from edgebench.transport.remote_store import install_runner, push_model
from edgebench.transport.runner_session import run_runner

# a cool-down runs on the device; it gets its own wait plus this much for the round trip
COOLDOWN_SLACK_S = 60
# the state a device is in while another controller holds its lock (a display may say more of it)
WAITING_FOR_LOCK = "waiting for the device lock"


class Observer:
    """Hooks for progress displays; the default shows nothing. Called from worker threads."""

    def model_progress(self, name):
        return None

    def push_progress(self, device: str, name: str):
        return None

    def evicted(self, device: str, evicted) -> None: ...

    def device_state(self, device: str, state: str) -> None: ...

    def temperature(self, device: str, temp_c: float) -> None: ...

    def cell_started(self, cell: Cell) -> None: ...

    def sample(self, cell: Cell, sample: Sample) -> None: ...

    def cell_finished(self, cell: Cell, error: str | None) -> None: ...

    def run_started(self, run_dir, records) -> None:
        """The run's directory exists (called once, before any cell); `records`, the run in memory
        (results/run_records.py), grows as the run appends to it."""

    def note(self, text: str) -> None:
        """Something the user should read once (a resumed run taking over or releasing a place)."""


def engine_options(engine, device) -> dict:
    """The options the engine declares, as the profile sets them (JSON-ready), but `threads`, which is the
    cell's; one left unset that a device setting supplies (llama-bench's binary) is the device's."""
    options = {}
    for option in engine.declaration.options:
        value = engine[option.name]
        if value is None and option.device_setting:
            value = getattr(device, option.device_setting)
        options[option.name] = to_plain(value)
    options.pop("threads", None)
    return options


def placed_options(engine, cell: Cell, cpu=None) -> tuple[dict, int | None]:
    """The engine options and thread count the cell runs with: `cores:` made a cpu_mask from the device's
    `cpu` fact (sweep/cores.py)."""
    return place_on_cores(engine_options(engine, cell.device), cell.threads, cpu, cell.device.name)


def cell_job(profile, cell: Cell, model_path: str, quality: dict | None = None, cpu=None) -> dict:
    """`cpu`: the device's probed cpu fact, which `cores:` needs."""
    engine = profile.engine
    options, threads = placed_options(engine, cell, cpu)
    return make_job(engine.name, model_path, cell.test, profile.repetitions, profile.warmup,
                    {**options, "threads": threads},
                    {"enabled": profile.telemetry.enabled, "interval_s": profile.telemetry.interval_s,
                     **_sensor_paths(cell.device)},
                    limits={"max_temp_c": cell.device.limits.max_temp_c}, quality=quality)


def _sensor_paths(device) -> dict:
    """The device's `telemetry:` section for the run and cool-down jobs, under its YAML keys.
    The whole section goes, not a list of picked keys: a setting added to the profile then reaches
    the runner without another edit here, and the runner refuses a key it does not know."""
    return to_plain(device.telemetry)


def cooldown_job(device, options) -> dict:
    """The job for the runner's `cooldown` mode before a cell (runner/cooldown.py)."""
    return {"target_c": options.target_c, "max_wait_s": options.max_wait_s,
            "fixed_delay_s": options.fixed_delay_s, "telemetry": _sensor_paths(device),
            "min_battery_pct": device.limits.min_battery_pct}


def cell_facts(profile, cell: Cell, cpu=None, where=None) -> CellFacts:
    """`where`: the place a shared device was claimed at (transport.claim), or None."""
    where = where or {}
    return CellFacts(variant=cell.variant, round=cell.round, device=cell.device.name,
                     device_class=cell.device.device_class, place=where.get("place"), lab=where.get("lab"),
                     engine=profile.engine.name, model=cell.model.name, test=cell.test.name,
                     n_prompt=cell.test.n_prompt, n_gen=cell.test.n_gen, n_depth=cell.test.n_depth,
                     batch=cell.test.batch,
                     n_threads=cell.threads, engine_options=_facts(profile.engine, cell, cpu))


def _facts(engine, cell: Cell, cpu) -> dict:
    """The options the engine records with each cell, in the order it declares them; a cell whose `cores:`
    could not be placed (it fails saying so) records them as the profile gives them."""
    try:
        options, _ = placed_options(engine, cell, cpu)
    except CoresError:
        options = engine_options(engine, cell.device)
    return {name: options[name] for name in engine.declaration.facts}


class CellRecorder:
    """Routes one attempt's runner events into the store."""

    def __init__(self, run, cell: Cell, attempt: int):
        self.run, self.cell, self.attempt = run, cell, attempt
        self.n_tokens = cell.test.n_items
        self.throttled = False
        self.samples: list[Sample] = []

    def __call__(self, event: dict) -> None:
        kind = event.pop("event")
        tag = {"cell": self.cell.id, "attempt": self.attempt}
        if kind == "start":
            self.run.store.append(CellRunning(**tag, info=event["info"], telemetry_sources=event.get("telemetry"),
                                              runner_rss_kb=event.get("runner_rss_kb")))
        elif kind == "telemetry":
            self.run.store.append(Telemetry(**tag, t=event.pop("t"), readings=event))
            temp = hottest(event)
            if temp is not None:
                self.run.observer.temperature(self.cell.device.name, temp)
        elif kind == "sample":
            # a quality test says how many tokens it decoded (its `quality:` block decides)
            sample = Sample(**tag, n_tokens=event.get("n_tokens") or self.n_tokens, rep=event["rep"],
                            t_ns=event["t_ns"], ts=event["ts"], ttft_ns=event.get("ttft_ns"),
                            window=event.get("window") or {}, quality=QualityScores.from_json(event.get("quality")),
                            host=event.get("host") or {})
            self.run.store.append(sample)
            self.samples.append(sample)
            self.throttled = self.throttled or bool(sample.window.get("throttled"))
            self.run.observer.sample(self.cell, sample)


class DeviceWorker:
    def __init__(self, run, device, cells: list[Cell]):
        self.run, self.device, self.cells = run, device, cells
        self.profile, self.store, self.observer = run.profile, run.store, run.observer
        self.transport = None
        self.where = None  # the labgrid place (and lab) this worker holds, for a shared device
        self.lock = None
        self.runner = None
        self.probed = False
        self.cpu = None  # the probe's cpu fact, for `cores:` (sweep/cores.py)
        self.down: EdgebenchError | None = None  # set when the device stays unreachable
        self.models: dict[object, object] = {}  # model reference -> LocalModel
        self.placed: dict[object, str] = {}  # LocalModel -> its path on the device

    @property
    def cancel(self) -> threading.Event:
        return self.run.cancel

    def state(self, text: str) -> None:
        self.observer.device_state(self.device.name, text)

    # -- the session -------------------------------------------------------------------------------

    def connect(self) -> None:
        if self.transport is not None:
            return
        where = claim(self.device, self.cancel, self.state)
        if where and where != self.where:
            self.where = where
            self.store.record_place(self.device.name, where)
        self.state("connecting")
        transport = open_transport(self.device)
        transport.cancel = self.cancel
        try:
            # the lock's holder is a mode of the runner, so the runner comes first (content-addressed
            # and renamed into place whole: another controller's install cannot disturb it)
            runner = install_runner(transport)
            lock = DeviceLock(transport, runner, self.store.run_id)
            lock.acquire(wait=self.run.wait_for_lock,
                         on_wait=lambda holder: self.state(f"{WAITING_FOR_LOCK} ({holder})"))
            self.transport, self.lock, self.runner = transport, lock, runner
            if not self.probed:
                probe = self.probe(transport)
                self.store.append(probe)
                self.cpu = self.cpu_fact(probe)
                self.probed = True
        except BaseException:
            self.disconnect(transport)
            raise

    def probe(self, transport) -> DeviceProbe:
        """What the device is, stored with the run: results are only comparable in their context.
        A probe that fails is recorded, and the cells still get their chance."""
        try:
            found = probe_with(transport, self.runner, timeout_s=min(PROBE_TIMEOUT_S, self.profile.timeout_s))
        except EdgebenchError as error:
            if error.transient:
                raise
            return DeviceProbe(device=self.device.name, transport=self.device.transport,
                               error={"kind": error.kind, "message": str(error)})
        return DeviceProbe(device=found["device"], transport=found["transport"], facts=found["facts"],
                           runner=found["runner"])

    def cpu_fact(self, probe: DeviceProbe):
        """The run's probe's cpu fact; where that probe failed, the one `devices check` kept."""
        if probe.facts is not None:
            return probe.facts.get("cpu")
        stored = recall(self.device.name)
        return stored.facts.get("cpu") if stored else None

    def disconnect(self, transport=None) -> None:
        transport = transport or self.transport
        if self.lock is not None:
            try:
                self.lock.release()
            except EdgebenchError:
                pass
        if transport is not None:
            transport.close()
        self.transport = self.lock = None

    def retrying(self, action, what: str):
        """Run action(); after a transient failure reconnect and try again, waiting longer each time."""
        for attempt in range(self.profile.retries + 1):
            try:
                self.connect()
                return action()
            except EdgebenchError as error:
                if self.is_last_try(error, attempt):
                    raise
                self.back_off(error, attempt, what)
        raise AssertionError("unreachable")

    def is_last_try(self, error: EdgebenchError, try_no: int) -> bool:
        return not error.transient or try_no == self.profile.retries or self.cancel.is_set()

    def back_off(self, error: EdgebenchError, try_no: int, what: str) -> None:
        """Drop the connection and wait before the next try, twice as long each time."""
        self.disconnect()
        delay = self.profile.retry_backoff_s * 2 ** try_no
        self.state(f"retrying {what} in {delay:g} s: {error}")
        if self.cancel.wait(delay):
            raise KeyboardInterrupt from error

    # -- the work ----------------------------------------------------------------------------------

    def work(self) -> None:
        try:
            for model_ref, model_cells in groupby(self.cells, key=lambda c: c.model):
                self.run_model(model_ref, list(model_cells))
            self.state("finished")
        finally:
            self.close()

    def close(self) -> None:
        """Done with the device: disconnect, and let a shared device's place go (labgrid)."""
        self.disconnect()
        let_go(self.device)

    def run_model(self, model_ref, cells: list[Cell]) -> None:
        placed = self.place(model_ref, cells)
        if placed is None:
            return
        model, remote = placed
        for cell in cells:
            if self.cancel.is_set():
                return
            self.run_cell(cell, model, remote)

    def place(self, model_ref, cells: list[Cell], full_disk_stops: bool = True):
        """The cells' model resolved and on the device: (the local model, its path there), once per
        worker. When it cannot be, `cells` fail with the reason and the answer is None; a full disk
        stops the run instead when `full_disk_stops` (an A/B run fails that round's cell)."""
        if self.down is not None:
            return self._fail_each(cells, self.down)
        try:
            if model_ref not in self.models:
                progress = self.observer.model_progress(model_ref.name)
                self.models[model_ref] = resolve_model(model_ref, progress=progress)
            model = self.models[model_ref]
        except EdgebenchError as error:  # this model's problem, not the device's
            return self._fail_each(cells, error)
        try:
            if model not in self.placed:
                progress = self.observer.push_progress(self.device.name, model.name)
                self.placed[model] = self.retrying(lambda: self.push(model, progress), "the push")
        except EdgebenchError as error:
            if full_disk_stops and isinstance(error, DiskFullError):
                raise
            self.note_if_down(error)
            return self._fail_each(cells, error)
        return model, self.placed[model]

    def _fail_each(self, cells: list[Cell], error: EdgebenchError) -> None:
        for cell in cells:
            self.fail(cell, error, self.run.next_attempt(cell))

    def push(self, model, progress) -> str:
        self.state(f"pushing {model.name}")
        result = push_model(self.transport, str(model.path), model.sha256, progress=progress,
                            extra_files=model.extra_files, runner=self.runner)
        if result.evicted:
            self.observer.evicted(self.device.name, result.evicted)
        return result.path

    def note_if_down(self, error: EdgebenchError) -> None:
        """A failure to reach the device at all (after retries), a refused host key or a busy
        lock holds for every later cell too: fail those at once instead of trying each."""
        if error.transient or self.transport is None:
            self.down = error

    def run_cell(self, cell: Cell, model, remote: str) -> None:
        if self.down is not None:
            self.fail(cell, self.down, self.run.next_attempt(cell))
            return
        cooldown = self.profile.cooldown
        recorder = self.measure(cell, model, remote, cooldown)
        if recorder and recorder.throttled and cooldown.rerun_throttled:
            self.state(f"{cell.id} throttled: measuring it again after a longer cool-down")
            self.measure(cell, model, remote, cooldown.longer(), rerun_of="throttled")

    def measure(self, cell: Cell, model, remote: str, cooldown, rerun_of: str | None = None):
        """One or more attempts at a cell (more after transient failures); the recorder of the one
        that finished, or None if the cell failed."""
        profile = self.run.profile_for(cell)
        try:
            quality = self.quality_job(profile, cell, model)
            placed_options(profile.engine, cell, self.cpu)  # a cell `cores:` cannot place fails here
        except EdgebenchError as error:
            self.fail(cell, error, self.run.next_attempt(cell))
            return None
        for try_no in range(self.profile.retries + 1):
            attempt = self.run.next_attempt(cell)
            try:
                self.connect()
                waited = self.cool_down(cooldown)
                facts = cell_facts(profile, cell, self.cpu, self.where)
                self.store.append(CellStart(cell=cell.id, attempt=attempt, facts=facts,
                                            model_filename=model.path.name, model_sha256=model.sha256,
                                            model_bytes=model.size, cooldown=waited, rerun_of=rerun_of))
                self.observer.cell_started(cell)
                self.state(f"measuring {cell.id}")
                recorder = CellRecorder(self.run, cell, attempt)
                job = cell_job(profile, cell, remote, quality, self.cpu)
                done = run_runner(self.transport, self.runner, "run", job, profile.timeout_s, recorder)
            except DiskFullError:
                raise  # nothing more can be recorded: stop the run rather than fail every cell
            except KeyboardInterrupt:
                self.store.append(CellEnd.interrupted(cell.id, attempt))
                raise
            except EdgebenchError as error:
                last = self.is_last_try(error, try_no)
                self.fail(cell, error, attempt, final=last)
                if last:
                    self.note_if_down(error)
                    return None
                self.back_off(error, try_no, cell.id)
                continue
            self.store.append(CellEnd.done(cell.id, attempt, done.get("info") or {}, done.get("peak_rss_kb"),
                                           recorder.throttled))
            self.observer.cell_finished(cell, None)
            return recorder
        return None

    def quality_job(self, profile, cell: Cell, model) -> dict | None:
        """A quality cell's `quality` job entry: the reference and text (or, with neither, tokens sampled from
        the model) on the device, pushed like models, once; after checking that the model shares the
        reference's tokenizer. None for other cells."""
        if not cell.test.quality:
            return None
        options = profile.quality
        files = self.run.quality_files(options)
        prepared = files.prepared()
        if cell.test.kind == "kld":
            files.check_tokenizer(model)
        own_samples = None
        if prepared.reference is None and prepared.text is None:
            own_samples = files.own_samples(model)
        remote = {}
        for name, local in (("reference", prepared.reference), ("text", prepared.text), ("tokens", own_samples)):
            if local is not None and local not in self.placed:
                self.placed[local] = self.retrying(lambda local=local: self.push(local, None), "the push")
            remote[name] = self.placed[local] if local is not None else None
        return {"n_ctx": options.n_ctx, "chunks": options.chunks, **remote}

    def cool_down(self, options) -> CoolDown | None:
        """The pre-cell check on the device: battery above the profile's minimum, then the cool-down."""
        if not options.active and self.device.limits.min_battery_pct is None:
            return None
        self.state("cooling down" if options.active else "checking the battery")
        job = cooldown_job(self.device, options)

        def progress(event):
            if event.get("event") == "cooling" and event.get("temp_c") is not None:
                self.observer.temperature(self.device.name, event["temp_c"])
                self.state(f"cooling down: {event['temp_c']:.1f} °C, target {options.target_c:g} °C")
        done = run_runner(self.transport, self.runner, "cooldown", job,
                          options.max_wait_s + options.fixed_delay_s + COOLDOWN_SLACK_S, progress)
        if done.get("start_temp_c") is not None:
            self.observer.temperature(self.device.name, done.get("end_temp_c") or done["start_temp_c"])
        return CoolDown.from_json(done)

    def fail(self, cell: Cell, error: EdgebenchError, attempt: int, final: bool = True) -> None:
        details = CellError(kind=error.kind, message=str(error), transient=error.transient)
        if isinstance(error, RunnerError):
            details = replace(details, exit_code=error.exit_code, signal=error.signal, stderr_tail=error.stderr_tail,
                              cause=error.cause)
        # a cell can fail before it starts (device unreachable, model missing): say what it was
        facts = cell_facts(self.run.profile_for(cell), cell, self.cpu, self.where)
        self.store.append(CellEnd.failed(cell.id, attempt, facts, details))
        if final:
            self.run.failed(cell, error)
            self.observer.cell_finished(cell, str(error))
