"""What each line of a run directory is: immutable, versioned record kinds with their JSON.

    run.json          RunHeader    what was planned (profile, devices, cells) and how the run went
                                   (results/header.py)
    devices.jsonl     DeviceProbe  one device's probed facts, or why the probe failed
    cells.jsonl       CellStart    an attempt at a cell begins: what the cell is, its model, its cool-down
                      CellRunning  its engine is loaded: engine facts, telemetry sources
                      CellEnd      the attempt ended: done, failed (with why) or interrupted
    samples.jsonl     Sample       one timed repetition, with its telemetry window summary
    telemetry.jsonl   Telemetry    one telemetry reading, tagged with its cell and attempt

Every writer builds these and every reader gets them back (results/store.py moves them to and from
the files); nothing outside these modules knows a record's keys or cells.jsonl's `state` strings.
results/model.py puts them together into what readers take: a run's cells, each its latest attempt.

Versions. run.json carries `schema_version`, the layout of the header (results/header.py). Each
jsonl line carries its own `"v"`, the layout of that one record, because records are never
rewritten: `merge` copies them as they were written and `run --resume` appends new ones beside old
ones, so one file can hold lines of two layouts, which a version in the header could not tell apart.
Lines without `"v"` were written before records carried it; their layout is version 1. Each record
keeps the version it was read in (`version`), and results/model.py, the one loader, converts older
layouts into what this edgebench writes, with the history of versions at its top. A version newer
than this edgebench knows is refused in a sentence that says to upgrade, never guessed at.

A new field gets a default (None) so older lines still read. A change to what a field means or how
it is shaped bumps RECORD_VERSION, and the loader learns to convert the older layout (as pyperf reads
older result files into its model).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Mapping, Union

RECORD_VERSION = 2  # the layout of every jsonl record this edgebench writes (results/model.py: the history)
VERSION_KEY = "v"
UNVERSIONED = 1  # the layout of a line written before records carried their version

# how an attempt at a cell ended (cells.jsonl's `state`, and a row's `status`)
DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"
# the state of the records before the end; a cell whose latest record is one of these never finished
STARTED, RUNNING = "started", "running"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class RecordError(ValueError):
    """A JSON object that is no record of its kind; the reader adds the file and line."""


def _versioned(data: Mapping) -> int:
    """The layout version of a record's JSON (refused when it is none, or newer than this edgebench)."""
    if not isinstance(data, Mapping):
        raise RecordError(f"a record is a JSON object, not {type(data).__name__}")
    version = data.get(VERSION_KEY, UNVERSIONED)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f"record version {version!r} is not a version number")
    if version > RECORD_VERSION:
        raise RecordError(f"record version {version}: this edgebench reads up to {RECORD_VERSION}; "
                          f"upgrade edgebench")
    return version


def _required(data: Mapping, key: str, kind: str):
    if data.get(key) is None:
        raise RecordError(f"{kind} record without {key!r}")
    return data[key]


def _count(data: Mapping, key: str, kind: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RecordError(f"{kind} record whose {key!r} is {value!r}, not a count")
    return value


def _number(data: Mapping, key: str, kind: str) -> float:
    value = _required(data, key, kind)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise RecordError(f"{kind} record whose {key!r} is {value!r}, not a number")
    return value


def _stamped(**record) -> dict:
    """A jsonl record's JSON, stamped with the version it is written in (its first key)."""
    return {VERSION_KEY: RECORD_VERSION, **record}


# -- the parts of cell records ---------------------------------------------------------------------


@dataclass(frozen=True)
class CellFacts:
    """What a cell is: where it ran, on which engine and model, which test, with which settings.
    Written in its start record, and in a failed one (a cell can fail before it starts)."""

    variant: str | None = None  # an ab run's A or B
    round: int | None = None  # an ab run's round
    device: str | None = None
    device_class: str | None = None
    # where a shared device was found: its labgrid place and lab (exporter); None for other devices
    place: str | None = None
    lab: str | None = None
    engine: str | None = None
    model: str | None = None
    test: str | None = None
    n_prompt: int | None = None
    n_gen: int | None = None
    n_depth: int | None = None
    batch: int | None = None
    n_threads: int | None = None  # as configured: None is "auto"
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> CellFacts | None:
        """The facts in a cell record, or None where it has none (an end written without them)."""
        if not any(f.name in data for f in fields(cls)):
            return None
        found = {f.name: data.get(f.name) for f in fields(cls)}
        return cls(**{**found, "engine_options": found["engine_options"] or {}})


NO_FACTS = CellFacts()


@dataclass(frozen=True)
class CoolDown:
    """The pre-cell check on the device (runner/cooldown.py): how long it waited, from what temperature."""

    method: str | None = None
    waited_s: float | None = None
    start_temp_c: float | None = None
    end_temp_c: float | None = None
    target_c: float | None = None
    reached: bool | None = None
    battery_pct: float | None = None

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping | None) -> CoolDown | None:
        """From a stored record or the runner's `done` event of a cool-down (the same keys)."""
        return None if data is None else cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass(frozen=True)
class CellError:
    """Why an attempt failed; `cause` is the engine's own line for why (records written before it was
    kept apart have it only in `stderr_tail`, where the loader, results/model.py, finds it)."""

    kind: str | None = None
    message: str | None = None
    transient: bool | None = None
    exit_code: int | None = None
    signal: int | None = None
    stderr_tail: str | None = None
    cause: str | None = None

    RUNNER_DETAILS: ClassVar[tuple[str, ...]] = ("exit_code", "signal", "stderr_tail", "cause")

    def to_json(self) -> dict:
        found = {"kind": self.kind, "message": self.message}
        if self.transient is not None:
            found["transient"] = self.transient
        # what the runner said about its failure, all of it or none (a failure the runner did not report)
        if any(getattr(self, k) is not None for k in self.RUNNER_DETAILS):
            found.update({k: getattr(self, k) for k in self.RUNNER_DETAILS})
        return found

    @classmethod
    def from_json(cls, data: Mapping | None) -> CellError | None:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)}) if data else None


# -- cells.jsonl -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CellStart:
    """An attempt at a cell begins (after the cool-down, before the engine loads)."""

    FILE: ClassVar[str] = "cells.jsonl"
    state: ClassVar[str] = STARTED

    cell: str
    attempt: int = 1
    facts: CellFacts = NO_FACTS
    started: str | None = field(default_factory=now_iso)
    model_filename: str | None = None
    model_sha256: str | None = None
    model_bytes: int | None = None
    cooldown: CoolDown | None = None
    rerun_of: str | None = None  # "throttled": measured again after a longer cool-down
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def to_json(self) -> dict:
        return _stamped(cell=self.cell, **self.facts.to_json(), attempt=self.attempt, state=self.state,
                       started=self.started, model_filename=self.model_filename, model_sha256=self.model_sha256,
                       model_bytes=self.model_bytes, cooldown=self.cooldown and self.cooldown.to_json(),
                       rerun_of=self.rerun_of)

    @classmethod
    def from_json(cls, data: Mapping) -> CellStart:
        return cls(version=_versioned(data), cell=_required(data, "cell", "cell"),
                   attempt=_count(data, "attempt", "cell", 1), facts=CellFacts.from_json(data) or NO_FACTS,
                   started=data.get("started"),
                   model_filename=data.get("model_filename"), model_sha256=data.get("model_sha256"),
                   model_bytes=data.get("model_bytes"), cooldown=CoolDown.from_json(data.get("cooldown")),
                   rerun_of=data.get("rerun_of"))


@dataclass(frozen=True, kw_only=True)
class CellRunning:
    """The engine loaded the model: what it says about itself, and which telemetry sources read."""

    FILE: ClassVar[str] = "cells.jsonl"
    state: ClassVar[str] = RUNNING

    cell: str
    attempt: int = 1
    info: Mapping[str, Any] = field(default_factory=dict)  # llama-bench's fields the engine reports
    telemetry_sources: Mapping[str, str] | None = None
    runner_rss_kb: int | None = None
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def to_json(self) -> dict:
        return _stamped(cell=self.cell, attempt=self.attempt, state=self.state, info=self.info,
                       telemetry_sources=self.telemetry_sources, runner_rss_kb=self.runner_rss_kb)

    @classmethod
    def from_json(cls, data: Mapping) -> CellRunning:
        return cls(version=_versioned(data), cell=_required(data, "cell", "cell"),
                   attempt=_count(data, "attempt", "cell", 1), info=data.get("info") or {},
                   telemetry_sources=data.get("telemetry_sources"),
                   runner_rss_kb=data.get("runner_rss_kb"))


@dataclass(frozen=True, kw_only=True)
class CellEnd:
    """An attempt ended: DONE (with the engine's late facts), FAILED or INTERRUPTED (with the error).
    A failed end carries the cell's facts too: it may be the only record of a cell that never started."""

    FILE: ClassVar[str] = "cells.jsonl"
    OUTCOMES: ClassVar[tuple[str, ...]] = (DONE, FAILED, INTERRUPTED)

    cell: str
    attempt: int = 1
    outcome: str
    ended: str | None = field(default_factory=now_iso)
    facts: CellFacts | None = None
    error: CellError | None = None
    info: Mapping[str, Any] = field(default_factory=dict)
    peak_rss_kb: int | None = None
    throttled: bool | None = None
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def __post_init__(self):
        if self.outcome not in self.OUTCOMES:
            raise RecordError(f"a cell ends as one of {', '.join(self.OUTCOMES)}, not {self.outcome!r}")

    @classmethod
    def done(cls, cell: str, attempt: int, info: Mapping, peak_rss_kb: int | None, throttled: bool) -> CellEnd:
        return cls(cell=cell, attempt=attempt, outcome=DONE, info=info or {}, peak_rss_kb=peak_rss_kb,
                   throttled=throttled)

    @classmethod
    def failed(cls, cell: str, attempt: int, facts: CellFacts, error: CellError) -> CellEnd:
        return cls(cell=cell, attempt=attempt, outcome=FAILED, facts=facts, error=error)

    @classmethod
    def interrupted(cls, cell: str, attempt: int) -> CellEnd:
        return cls(cell=cell, attempt=attempt, outcome=INTERRUPTED,
                   error=CellError(kind="interrupted", message="controller interrupted"))

    @property
    def state(self) -> str:
        return self.outcome

    @property
    def is_done(self) -> bool:
        return self.outcome == DONE

    def to_json(self) -> dict:
        facts = self.facts.to_json() if self.facts else {}
        record = _stamped(cell=self.cell, **facts, attempt=self.attempt, state=self.outcome, ended=self.ended)
        if self.is_done:
            record.update(info=self.info, peak_rss_kb=self.peak_rss_kb, throttled=self.throttled)
        else:
            record.update(error=self.error and self.error.to_json())
        return record

    @classmethod
    def from_json(cls, data: Mapping) -> CellEnd:
        return cls(version=_versioned(data), cell=_required(data, "cell", "cell"),
                   attempt=_count(data, "attempt", "cell", 1), outcome=data["state"], ended=data.get("ended"),
                   facts=CellFacts.from_json(data),
                   error=CellError.from_json(data.get("error")), info=data.get("info") or {},
                   peak_rss_kb=data.get("peak_rss_kb"), throttled=data.get("throttled"))


CellRecord = Union[CellStart, CellRunning, CellEnd]
_CELL_RECORDS = {STARTED: CellStart, RUNNING: CellRunning, DONE: CellEnd, FAILED: CellEnd, INTERRUPTED: CellEnd}


def cell_record(data: Mapping) -> CellRecord:
    """A cells.jsonl line, of the kind its `state` says."""
    _versioned(data)
    kind = _CELL_RECORDS.get(data.get("state"))
    if kind is None:
        raise RecordError(f"cell record with state {data.get('state')!r}; known: {', '.join(_CELL_RECORDS)}")
    return kind.from_json(data)


# -- samples.jsonl, telemetry.jsonl, devices.jsonl -------------------------------------------------


@dataclass(frozen=True)
class QualityScores:
    """What a quality test (`ppl`, `kld`) measured, as llama-perplexity prints it (runner/scoring/stats.py):
    a `ppl` test fills ppl, ppl_stderr and n_scored; a `kld` test all of them. PPL(Q)/PPL(base) is
    `ppl_ratio`; `same_top_p` and `delta_p_rms` are fractions (llama-perplexity prints percent)."""

    ROW_FIELDS: ClassVar[tuple[str, ...]] = (
        "ppl", "ppl_stderr", "ppl_ratio", "kld_mean", "kld_median", "kld_p99", "kld_p99_9", "kld_max",
        "delta_p_rms", "same_top_p", "n_scored")

    n_scored: int
    ppl: float
    ppl_stderr: float | None = None
    ppl_base: float | None = None
    ppl_ratio: float | None = None
    ppl_ratio_stderr: float | None = None
    kld_mean: float | None = None
    kld_stderr: float | None = None
    kld_median: float | None = None
    kld_p99: float | None = None
    kld_p99_9: float | None = None
    kld_max: float | None = None
    delta_p_rms: float | None = None
    delta_p_rms_stderr: float | None = None
    same_top_p: float | None = None
    same_top_p_stderr: float | None = None

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: Mapping | None) -> QualityScores | None:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise RecordError(f"quality scores are a JSON object, not {type(data).__name__}")
        _count(data, "n_scored", "quality")
        _number(data, "ppl", "quality")
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def row(self) -> dict:
        return {name: getattr(self, name) for name in self.ROW_FIELDS}


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One timed repetition of a cell's attempt."""

    FILE: ClassVar[str] = "samples.jsonl"

    cell: str
    attempt: int = 1
    n_tokens: int  # what the test processes per repetition (tokens, or items of a batch test)
    rep: int
    t_ns: int
    ts: float  # n_tokens per second
    ttft_ns: int | None = None
    window: Mapping[str, Any] = field(default_factory=dict)  # the telemetry summary over the repetition
    quality: QualityScores | None = None  # a quality test's scores (its one sample)
    # what else used the device meanwhile (runner/host_reading.py): steal_pct, load1, n_cpus; {} in older lines
    host: Mapping[str, Any] = field(default_factory=dict)
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def to_json(self) -> dict:
        found = _stamped(cell=self.cell, attempt=self.attempt, n_tokens=self.n_tokens, rep=self.rep, t_ns=self.t_ns,
                         ts=self.ts, ttft_ns=self.ttft_ns, window=self.window,
                         **({"host": self.host} if self.host else {}))
        if self.quality is not None:
            found["quality"] = self.quality.to_json()
        return found

    @classmethod
    def from_json(cls, data: Mapping) -> Sample:
        return cls(version=_versioned(data), cell=_required(data, "cell", "sample"),
                   attempt=_count(data, "attempt", "sample", 1),
                   n_tokens=_count(data, "n_tokens", "sample"), rep=_count(data, "rep", "sample"),
                   t_ns=_number(data, "t_ns", "sample"), ts=_number(data, "ts", "sample"),
                   ttft_ns=data.get("ttft_ns"), window=data.get("window") or {},
                   quality=QualityScores.from_json(data.get("quality")), host=data.get("host") or {})


@dataclass(frozen=True, kw_only=True)
class Telemetry:
    """One sampler reading while a cell ran; `t` is the device's monotonic clock, `readings` what each
    telemetry source read (their keys are the sources' own: rss_kb, thermal_c, cpufreq_khz, ...)."""

    FILE: ClassVar[str] = "telemetry.jsonl"

    cell: str
    attempt: int = 1
    t: float
    readings: Mapping[str, Any] = field(default_factory=dict)
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def to_json(self) -> dict:
        return _stamped(cell=self.cell, attempt=self.attempt, t=self.t, **self.readings)

    @classmethod
    def from_json(cls, data: Mapping) -> Telemetry:
        version = _versioned(data)
        readings = {k: v for k, v in data.items() if k not in (VERSION_KEY, "cell", "attempt", "t")}
        return cls(version=version, cell=_required(data, "cell", "telemetry"),
                   attempt=_count(data, "attempt", "telemetry", 1),
                   t=_number(data, "t", "telemetry"), readings=readings)


@dataclass(frozen=True, kw_only=True)
class DeviceProbe:
    """A device's probed facts (as `devices check --json` prints them), or why the probe failed."""

    FILE: ClassVar[str] = "devices.jsonl"

    device: str
    transport: str | None = None
    facts: Mapping[str, Any] | None = None
    runner: Mapping[str, Any] | None = None  # the runner's view: engines, telemetry sources
    error: Mapping[str, Any] | None = None
    # the layout it was read in (what this edgebench writes is RECORD_VERSION): the loader converts older ones
    version: int = field(default=RECORD_VERSION, compare=False, repr=False)

    def to_json(self) -> dict:
        optional = {"facts": self.facts, "runner": self.runner, "error": self.error}
        return _stamped(device=self.device, transport=self.transport,
                       **{k: v for k, v in optional.items() if v is not None})

    @classmethod
    def from_json(cls, data: Mapping) -> DeviceProbe:
        return cls(version=_versioned(data), device=_required(data, "device", "device"),
                   transport=data.get("transport"), facts=data.get("facts"),
                   runner=data.get("runner"), error=data.get("error"))


JsonlRecord = Union[CellStart, CellRunning, CellEnd, Sample, Telemetry, DeviceProbe]
# each jsonl file and how its lines are read, in the order merge copies them
JSONL_READERS = {DeviceProbe.FILE: DeviceProbe.from_json, CellStart.FILE: cell_record,
                 Sample.FILE: Sample.from_json, Telemetry.FILE: Telemetry.from_json}
