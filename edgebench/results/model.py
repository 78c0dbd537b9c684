"""The result model: a run as every reader gets it, built by the one loader that converts old layouts.

    RunResults   a run: its header (run.json), its device probes (devices.jsonl), every record of every
                 cell's attempts (cells.jsonl, samples.jsonl), and each cell's latest attempt as a CellResult
    CellResult   a cell's latest attempt: what it is, its samples with their telemetry windows, its engine
                 settings, and its statistics as methods (median, mean, stdev, percentiles, t/s)

`load(run_dir)` reads the files (results/store.py) and hands the records to `RunResults.from_records`;
the controller builds the same thing record by record as it writes them (`ResultsBuilder`). The
llama-bench row is a view of a CellResult (`CellResult.row()`, results/aggregate.py), which every
export (results/export.py) writes.

Every conversion of an older layout is here, applied once as records are taken in; readers see only
the current one. The history (a jsonl record's "v"; run.json's schema_version is results/header.py's):

    v1, no "v"  records before they carried their version: the same layout as v1. Samples and
                telemetry of every version read as they are (fields they gained since are None or empty).
    v1          a failure's `cause` (the engine's own line for why) only inside `stderr_tail`: taken out.
    v1          `engine_options` of every engine, whatever ran (before engines declared what they
                record): their row fields are llama.cpp's.
    v1          options the cell did not record: its row shows llama.cpp's later ones (LATER_FACTS) at
                their declared defaults, its settings take its run's profile, else the engine's
                declared default; an ab run's `round` is None.
    run.json 1  a profile's `engine:` section holding every engine's options at their defaults (before
                engines declared their options): only the engine's own are kept. An ab run's thresholds
                not stored apart: variant B's profile's.
    v2          the layout v1's last writers wrote, every field present. The version says so: a v2 line
                is taken as it is, where a v1 line is converted as above.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

from edgebench.results.header import RunHeader
from edgebench.results.order_stats import median, quantile
from edgebench.results.records import (
    NO_FACTS,
    CellEnd,
    CellError,
    CellFacts,
    CellRecord,
    CellStart,
    DeviceProbe,
    JsonlRecord,
    Sample,
    Telemetry,
)
from edgebench.runner import engines
from edgebench.runner.crashes import main_cause

# records from this version on are complete: nothing to convert
COMPLETE = 2
# the engine whose options records of unknown or undeclared engines hold (and whose row fields they fill)
LLAMA_CPP = "llama.cpp"
# the options llama.cpp's cells recorded only later: a v1 record without them ran at their default
LATER_FACTS = ("flash_attn", "use_mmap", "repack", "n_cpu_moe", "swa_full", "cpu_mask", "cpu_strict")
# the values of a sample a statistic is taken over
SERIES = ("t_ns", "ts", "ttft_ns")


# -- a cell ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """A cell's latest attempt, from its records in the order they were written, with its samples (by rep).
    A retry or a resumed run supersedes what went before, which stays in the files."""

    cell: str
    attempt: int
    records: tuple[CellRecord, ...]
    samples: tuple[Sample, ...] = ()
    # the engine settings the cell ran with: recorded, else its run's profile, else the engine's default
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)
    # the engine whose declared row fields the recorded options fill, and the options they are filled from
    row_engine: str = LLAMA_CPP
    row_options: Mapping[str, Any] = field(default_factory=dict, hash=False)

    # -- what it is and how it went

    @property
    def facts(self) -> CellFacts:
        """What the cell is, from its latest record that says (a failed end may be the only one)."""
        return next((r.facts for r in reversed(self.records) if getattr(r, "facts", None) not in (None, NO_FACTS)),
                    NO_FACTS)

    @property
    def start(self) -> CellStart | None:
        return next((r for r in reversed(self.records) if isinstance(r, CellStart)), None)

    @property
    def end(self) -> CellEnd | None:
        """How the attempt ended; None if it never did (the controller was killed, or is still measuring)."""
        last = self.records[-1]
        return last if isinstance(last, CellEnd) else None

    @property
    def error(self) -> CellError | None:
        return next((r.error for r in reversed(self.records) if isinstance(r, CellEnd) and r.error), None)

    @property
    def engine_info(self) -> dict:
        """What the engine said about itself, when it loaded and when it finished (later facts refine)."""
        info: dict = {}
        for record in self.records:
            if not isinstance(record, CellStart):
                info.update({k: v for k, v in record.info.items() if v is not None})
        return info

    @property
    def model_identity(self) -> str | None:
        """The model's sha256 where the cell recorded it, else its name: what says two cells ran one model."""
        start = self.start
        return (start and start.model_sha256) or self.facts.model

    @property
    def finished(self) -> bool:
        """Measured: ended as done with at least one sample."""
        return self.end is not None and self.end.is_done and bool(self.samples)

    @property
    def measured(self) -> bool:
        """Finished with a number to show (what the exports write)."""
        ts = self.mean("ts")
        return self.finished and ts is not None and not math.isnan(ts)

    # -- statistics over its samples (one value per timed repetition)

    def values(self, series: str = "ts") -> tuple:
        """The samples' values of one series (t_ns, ts, ttft_ns), in rep order; a sample without it is left out."""
        if series not in SERIES:
            raise ValueError(f"no series {series!r}; known: {', '.join(SERIES)}")
        return tuple(v for v in (getattr(s, series) for s in self.samples) if v is not None)

    def mean(self, series: str = "ts") -> float | None:
        values = self.values(series)
        return statistics.mean(values) if values else None

    def stdev(self, series: str = "ts") -> float | None:
        """The sample standard deviation; 0 for one value (llama-bench's), None for none."""
        values = self.values(series)
        if not values:
            return None
        return statistics.stdev(values) if len(values) > 1 else 0.0

    def median(self, series: str = "ts") -> float | None:
        return median(self.values(series))

    def percentile(self, q: float, series: str = "t_ns") -> float | None:
        """The q-th percentile (0..100), interpolated as numpy's default (order_stats.quantile)."""
        values = sorted(self.values(series))
        return quantile(values, q / 100) if values else None

    @property
    def tokens_per_s(self) -> float | None:
        """The mean t/s over the repetitions (llama-bench's avg_ts)."""
        return self.mean("ts")

    # -- views

    def row(self) -> dict:
        """The llama-bench row (results/aggregate.py): what every export writes."""
        from edgebench.results.aggregate import cell_row

        return cell_row(self)


class Machine(NamedTuple):
    """What a device's probe says the machine is, as far as a comparison cares."""

    cpu_model: str | None
    cores: int | None
    ram_bytes: int | None

    # RAM the kernel reports shifts by a little between kernels and boots of one machine
    RAM_TOLERANCE = 0.02

    def differences(self, other: Machine) -> list[str]:
        """What differs, as `what A vs B`, for facts both probes have."""
        found = []
        if self.cpu_model and other.cpu_model and self.cpu_model != other.cpu_model:
            found.append(f"CPU {self.cpu_model!r} vs {other.cpu_model!r}")
        if self.cores and other.cores and self.cores != other.cores:
            found.append(f"{self.cores} vs {other.cores} cores")
        if self.ram_bytes and other.ram_bytes and \
                abs(self.ram_bytes - other.ram_bytes) > self.RAM_TOLERANCE * max(self.ram_bytes, other.ram_bytes):
            found.append(f"RAM {self.ram_bytes / 2**30:.1f} vs {other.ram_bytes / 2**30:.1f} GiB")
        return found

    @classmethod
    def of(cls, facts: Mapping | None) -> Machine | None:
        if not isinstance(facts, Mapping):
            return None
        cpu, memory = facts.get("cpu") or {}, facts.get("memory") or {}
        return cls(cpu.get("model"), cpu.get("physical_cores") or cpu.get("logical_cores"),
                   memory.get("total_bytes"))


# -- a run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResults:
    """A run directory's contents, converted to the current layout; `cells` holds each cell's latest
    attempt in the order cells first appear, `cell_records` and `samples` every attempt's records."""

    header: RunHeader
    devices: tuple[DeviceProbe, ...] = ()
    cell_records: tuple[CellRecord, ...] = ()
    samples: tuple[Sample, ...] = ()
    telemetry: tuple[Telemetry, ...] = ()
    cells: tuple[CellResult, ...] = ()

    @classmethod
    def from_records(cls, header: RunHeader, devices: Iterable[DeviceProbe] = (),
                     cells: Iterable[CellRecord] = (), samples: Iterable[Sample] = (),
                     telemetry: Iterable[Telemetry] = ()) -> RunResults:
        """The run the records make, older layouts converted (pure: nothing is read)."""
        builder = ResultsBuilder(header)
        for record in (*devices, *cells, *samples, *telemetry):
            builder.add(record)
        return builder.results()

    def adding(self, record: JsonlRecord) -> RunResults:
        """This run with one more record (a new RunResults; for many records use a ResultsBuilder)."""
        builder = ResultsBuilder(self.header)
        for old in (*self.devices, *self.cell_records, *self.samples, *self.telemetry, record):
            builder.add(old)
        return builder.results()

    def cell(self, cell_id: str) -> CellResult | None:
        return next((c for c in self.cells if c.cell == cell_id), None)

    def probe(self, device: str) -> DeviceProbe | None:
        """The device's latest probe (a resumed run probes again)."""
        return next((p for p in reversed(self.devices) if p.device == device), None)

    def machine(self, device: str) -> Machine | None:
        probe = self.probe(device)
        return Machine.of(probe.facts) if probe else None

    def rows(self) -> list[dict]:
        return [cell.row() for cell in self.cells]


class ResultsBuilder:
    """A RunResults built record by record, as the controller appends them: adding is cheap, and
    `results()` remakes only the cells that changed since it was last asked."""

    def __init__(self, header: RunHeader):
        self.header = converted_header(header)
        self._devices: list[DeviceProbe] = []
        self._records: list[CellRecord] = []
        self._samples: list[Sample] = []
        self._telemetry: list[Telemetry] = []
        self._latest: dict[str, tuple[int, list[CellRecord]]] = {}  # cell -> (attempt, its records)
        self._measured: dict[tuple[str, int], list[Sample]] = {}
        self._made: dict[str, CellResult] = {}

    def set_header(self, header: RunHeader) -> None:
        self.header = converted_header(header)
        self._made.clear()  # a cell's settings come from the header's profile

    def add(self, record: JsonlRecord) -> None:
        if isinstance(record, DeviceProbe):
            self._devices.append(record)
        elif isinstance(record, Telemetry):
            self._telemetry.append(record)
        elif isinstance(record, Sample):
            self._samples.append(record)
            self._measured.setdefault((record.cell, record.attempt), []).append(record)
            self._made.pop(record.cell, None)
        else:
            record = converted_cell_record(record)
            self._records.append(record)
            number, found = self._latest.get(record.cell, (None, None))
            if number is None or record.attempt > number:
                self._latest[record.cell] = (record.attempt, [record])
            elif record.attempt == number:
                found.append(record)
            self._made.pop(record.cell, None)

    def results(self) -> RunResults:
        for cell in self._latest:
            if cell not in self._made:
                self._made[cell] = self._cell(cell)
        return RunResults(self.header, tuple(self._devices), tuple(self._records), tuple(self._samples),
                          tuple(self._telemetry), tuple(self._made[cell] for cell in self._latest))

    def _cell(self, cell: str) -> CellResult:
        number, records = self._latest[cell]
        samples = tuple(sorted(self._measured.get((cell, number), ()), key=lambda s: s.rep))
        found = CellResult(cell, number, tuple(records), samples)
        row_engine = _row_engine(found)
        return replace(found, settings=_settings(found.facts, self.header), row_engine=row_engine,
                       row_options=_row_options(found, row_engine))


def load(run_dir: Path, telemetry: bool = False) -> RunResults:
    """A run directory as the result model (its telemetry.jsonl too when asked: only reports plot it)."""
    from edgebench.results import store

    path = Path(run_dir)
    header = store.read_header(path)
    return RunResults.from_records(header, store.read_device_probes(path), store.read_cell_records(path),
                                   store.read_samples(path), store.read_telemetry(path) if telemetry else ())


def load_header(run_dir: Path) -> RunHeader:
    """A run's header alone, converted as the loader converts it."""
    from edgebench.results.store import read_header

    return converted_header(read_header(Path(run_dir)))


# -- the conversions (the version history above) ---------------------------------------------------


def converted_cell_record(record: CellRecord) -> CellRecord:
    if record.version >= COMPLETE or not isinstance(record, CellEnd) or record.error is None:
        return record
    error = record.error
    if error.cause is None and error.stderr_tail:
        return replace(record, error=replace(error, cause=main_cause(error.stderr_tail)))
    return record


def _facts_version(cell: CellResult) -> int:
    """The layout of the record the cell's facts come from."""
    recorded = next((r for r in reversed(cell.records) if getattr(r, "facts", None) not in (None, NO_FACTS)), None)
    return recorded.version if recorded is not None else COMPLETE


def _row_engine(cell: CellResult) -> str:
    """The engine whose row fields the cell's recorded options fill: its own, unless the options are not
    all its declared facts (a v1 record holding llama.cpp's whatever the engine) or the engine is unknown."""
    facts = cell.facts
    declared = engines.declared(facts.engine or "")
    if declared is None:
        return LLAMA_CPP
    if _facts_version(cell) < COMPLETE and not set(facts.engine_options or {}) <= set(declared.facts):
        return LLAMA_CPP
    return declared.name


def _row_options(cell: CellResult, row_engine: str) -> dict:
    """The recorded options, and in a v1 record of llama.cpp's options those it did not record yet at
    their declared defaults."""
    options = dict(cell.facts.engine_options or {})
    if row_engine != LLAMA_CPP or _facts_version(cell) >= COMPLETE:
        return options
    declared = engines.declared(LLAMA_CPP)
    return {**{name: declared.option(name).default for name in LATER_FACTS if name not in options}, **options}


def _settings(facts: CellFacts, header: RunHeader) -> dict:
    """A cell's engine settings: what the cell recorded, else what its run's profile said (a run written
    before the engine recorded the setting stored it there), else the engine's declared default."""
    declared = engines.declared(facts.engine or "")
    if declared is None:
        return {}
    profiles = {None: header.profile or {}, **(header.ab.variants if header.ab else {})}
    stored = (profiles.get(facts.variant) or {}).get("engine") or {}
    if stored.get("name") != declared.name:
        stored = {}
    return {**declared.defaults(), **stored, **(facts.engine_options or {})}


def converted_header(header: RunHeader) -> RunHeader:
    """run.json as this edgebench writes it: the profile's engine section with its engine's options only,
    and an ab run's thresholds."""
    profile = header.profile
    if isinstance(profile, Mapping) and isinstance(profile.get("engine"), Mapping):
        profile = {**profile, "engine": _own_options(profile["engine"])}
    ab = header.ab
    if ab is not None and not ab.thresholds:
        ab = replace(ab, thresholds=(ab.variants.get("B") or {}).get("thresholds") or {})
    if profile is header.profile and ab is header.ab:
        return header
    return replace(header, profile=profile, ab=ab)


def _own_options(section: Mapping) -> Mapping:
    """An engine section less the options of other engines (config/engine.py checks a section as read)."""
    name = section.get("name") or LLAMA_CPP
    declared = engines.declared(name) if isinstance(name, str) else None
    if declared is None:
        return section
    own = {k: v for k, v in section.items() if k == "name" or declared.option(k)}
    return section if len(own) == len(section) else own
