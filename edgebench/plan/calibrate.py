"""Efficiency factors measured from stored results.

For every finished llama.cpp / llama-bench cell in a results root, the measured t/s and the roofline's
cost per token (bytes for tg, FLOPs for pp) say what the device delivers. A cell counts only when it
can be trusted and is the latest word on what it measured: at most one per model and test (the newest),
none taken while other work crowded the device or the hypervisor stole its time, none run on fewer
threads than the device's other cells. Generation cells fit the bandwidth and the fixed-work rate
(tg_fit.py); prompt cells give FLOPS, their median. What was used and what was left out is kept, so the
plan can say which runs calibrated it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.errors import EdgebenchError
from edgebench.models.gguf_info import ModelInfo, info_from_shape, read_gguf
from edgebench.plan.memory import Runtime
from edgebench.plan.speed import flops_per_token, token_cost
from edgebench.plan.tg_fit import TgFit, TgPoint, fit_tg
from edgebench.results.store import HEADER

if TYPE_CHECKING:
    from edgebench.results.model import CellResult

MEASURING_ENGINES = ("llama.cpp", "llama-bench")
# a cell is disturbed when a sample saw more steal than this (the hypervisor ran another guest) ...
MAX_STEAL_PCT = 5.0
# ... or a 1-minute load above this many times the CPUs: the benchmark's own threads load each CPU
# once, so beyond half a CPU of other work the cell measured a share of the device, not the device
MAX_LOAD_PER_CPU = 1.5


@dataclass(frozen=True)
class Limits:
    max_steal_pct: float = MAX_STEAL_PCT
    max_load: float | None = None   # None: MAX_LOAD_PER_CPU x the CPUs the runner saw
    max_cpu_wait_pct: float | None = None  # None: ab's default (sweep/disturbance.py)

    def why(self, samples) -> str | None:
        """Why a cell's samples do not describe the device, or None when nothing disturbed them: `ab`'s
        rule, with a lower default load (a plan wants the device's speed, not A against B)."""
        from edgebench.sweep.disturbance import Disturbance

        cpus = next((s.host.get("n_cpus") for s in samples if s.host and s.host.get("n_cpus")), None)
        load = self.max_load if self.max_load is not None else (MAX_LOAD_PER_CPU * cpus if cpus else float("inf"))
        wait = {} if self.max_cpu_wait_pct is None else {"max_cpu_wait_pct": self.max_cpu_wait_pct}
        reason = Disturbance(max_steal_pct=self.max_steal_pct, max_load=load, **wait).why(samples)
        return reason and f"disturbed: {reason}"


@dataclass(frozen=True)
class Ignored:
    run: str
    model: str
    test: str
    reason: str


@dataclass(frozen=True)
class PpPoint:
    """A prompt cell that calibrates a device: the FLOP/s it delivered."""

    run: str
    model: str
    test: str
    ts: float
    flops: float
    threads: int | None = None
    started: str | None = None


@dataclass
class Calibration:
    """What stored results say about one device."""

    device: str
    tg: list[TgPoint] = field(default_factory=list)        # the cells that calibrate generation
    pp: list[PpPoint] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    probe: dict | None = None       # the latest probed facts (devices.jsonl)
    probe_run: str | None = None
    probe_date: str | None = None

    @cached_property
    def tg_fit(self) -> TgFit | None:
        return fit_tg(self.tg)

    @property
    def runs(self) -> set[str]:
        return {p.run for p in self.tg + self.pp}

    @property
    def effective_bandwidth(self) -> float | None:
        return self.tg_fit.bandwidth if self.tg_fit else None

    @property
    def effective_flops(self) -> float | None:
        return statistics.median(p.flops for p in self.pp) if self.pp else None


def run_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/{HEADER}"))


@dataclass
class _Candidate:
    point: TgPoint | PpPoint
    kind: str                 # "tg" or "pp"
    key: tuple                # model (sha256, else name) and test
    disturbed: str | None


def calibrate(root: Path, limits: Limits = Limits()) -> dict[str, Calibration]:
    """Per device name, everything the runs under `root` measured (unreadable runs are skipped:
    a plan should not fail because of an unrelated broken directory)."""
    found: dict[str, Calibration] = {}
    candidates: dict[str, list[_Candidate]] = {}
    model_cache: dict[str, ModelInfo | None] = {}
    for run in run_dirs(root):
        for device, candidate in _run_candidates(run, found, model_cache, limits):
            candidates.setdefault(device, []).append(candidate)
    for device, cells in candidates.items():
        _choose(found.setdefault(device, Calibration(device)), cells)
    return found


def _run_candidates(run: Path, found: dict, model_cache: dict, limits: Limits):
    from edgebench.results.model import load

    try:
        results = load(run)
    except (EdgebenchError, OSError, ValueError, KeyError):
        return
    header = results.header
    arch = {}
    for probe in results.devices:
        if isinstance(probe.facts, dict):
            cal = found.setdefault(probe.device, Calibration(probe.device))
            # sorted by name = by time
            cal.probe, cal.probe_run, cal.probe_date = probe.facts, run.name, header.created
            arch[probe.device] = probe.facts.get("arch")
    models = {m.get("name"): m for m in (header.profile or {}).get("models") or []}
    for cell in results.cells:
        facts = cell.facts
        if not cell.finished or not cell.tokens_per_s or facts.engine not in MEASURING_ENGINES:
            continue
        info = _model_info(models.get(facts.model), cell, model_cache)
        if info is None:
            continue
        cal = found.get(facts.device)
        # which weights were repacked, and so how fast they were read, depends on the CPU
        cpu_arch = arch.get(facts.device) or ((cal.probe if cal else None) or {}).get("arch") or Runtime.cpu_arch
        runtime = Runtime(kv_type=cell.settings.get("type_k") or "f16", cpu_arch=cpu_arch)
        point = _point(run.name, cell, info, runtime)
        if point is not None:
            yield facts.device, _Candidate(point[1], point[0], (cell.model_identity, facts.test),
                                           limits.why(cell.samples))


def _point(run: str, cell: CellResult, info: ModelInfo, runtime: Runtime) -> tuple[str, TgPoint | PpPoint] | None:
    facts, ts = cell.facts, cell.tokens_per_s
    n_prompt, n_gen, depth = facts.n_prompt or 0, facts.n_gen or 0, facts.n_depth or 0
    # the threads the engine used (what it reported), not the configured "auto"
    common = dict(run=run, model=facts.model or "?", test=facts.test or "?", ts=ts,
                  threads=cell.engine_info.get("n_threads"), started=cell.start and cell.start.started)
    if n_gen and not n_prompt:
        reads, fixed = token_cost(info, runtime, depth + n_gen // 2)
        return "tg", TgPoint(reads=reads, fixed=fixed, **common)
    if n_prompt and not n_gen:
        return "pp", PpPoint(flops=ts * flops_per_token(info, depth + n_prompt // 2), **common)
    return None


def _choose(cal: Calibration, cells: list[_Candidate]) -> None:
    """The newest undisturbed cell per model and test, on the device's most threads; the rest ignored
    with the reason."""
    most = max((c.point.threads for c in cells if c.point.threads), default=None)
    newest: dict[tuple, _Candidate] = {}
    for cell in sorted(cells, key=lambda c: (c.point.started or "", c.point.run)):
        threads = cell.point.threads
        if cell.disturbed or (most and threads and threads < most):
            reason = cell.disturbed or f"{threads} threads, fewer than the {most} of the device's other cells"
            cal.ignored.append(Ignored(cell.point.run, cell.point.model, cell.point.test, reason))
            continue
        older = newest.get(cell.key)
        if older is not None:
            cal.ignored.append(Ignored(older.point.run, older.point.model, older.point.test,
                                       f"superseded by {cell.point.run}"))
        newest[cell.key] = cell
    for cell in newest.values():
        (cal.tg if cell.kind == "tg" else cal.pp).append(cell.point)


def _model_info(model: dict | None, cell: CellResult, cache: dict) -> ModelInfo | None:
    """The measured model's facts: its file if it is still there, its synth spec, else none."""
    key = cell.model_identity
    if key in cache:
        return cache[key]
    info = None
    if model:
        path = model.get("path")
        if path and Path(path).is_file():
            try:
                info = read_gguf(path)
            except EdgebenchError:
                info = None
        if info is None and model.get("synthetic"):
            info = _from_spec(model["synthetic"])
    cache[key] = info
    return info


def _from_spec(spec) -> ModelInfo | None:
    from edgebench.models.synth.shapes import shape_for
    from edgebench.models.synth.spec import SynthSpec, parse_synth_spec

    try:
        if isinstance(spec, dict):
            spec = SynthSpec(**spec)
        elif isinstance(spec, str):
            spec = parse_synth_spec(spec)
        return info_from_shape(shape_for(spec), spec.quant, source=str(spec))
    except (EdgebenchError, TypeError):
        return None


def describe_probe(probe: dict | None) -> dict:
    """The probed facts a plan uses: total RAM, CPU architecture and features, physical cores."""
    if not probe:
        return {}
    memory, cpu = probe.get("memory") or {}, probe.get("cpu") or {}
    features = cpu.get("features")
    return {"ram_bytes": memory.get("total_bytes"), "arch": probe.get("arch"),
            "cores": cpu.get("physical_cores"),
            "cpu_features": tuple(sorted(k for k, v in features.items() if v)) if isinstance(features, dict) else None}
