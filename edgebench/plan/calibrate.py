"""Efficiency factors measured from stored results.

For every finished llama.cpp / llama-bench cell in a results root, the measured t/s times the
roofline's cost per token (bytes for tg, FLOPs for pp) gives the effective bandwidth or FLOPS the
device delivered. Their median per device replaces the default eta x profile figure; when the
profile gives the peak, eta = effective / peak is reported too.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.models.gguf_info import ModelInfo, info_from_shape, read_gguf
from edgebench.plan.memory import Runtime
from edgebench.plan.speed import bytes_per_token, flops_per_token
from edgebench.results.store import HEADER

MEASURING_ENGINES = ("llama.cpp", "llama-bench")


@dataclass
class Calibration:
    """What stored results say about one device."""

    device: str
    tg_bandwidth: list[float] = field(default_factory=list)   # effective bytes/s, one per cell
    pp_flops: list[float] = field(default_factory=list)       # effective FLOP/s, one per cell
    runs: set[str] = field(default_factory=set)
    probe: dict | None = None       # the latest probed facts (devices.jsonl)
    probe_run: str | None = None

    @property
    def effective_bandwidth(self) -> float | None:
        return statistics.median(self.tg_bandwidth) if self.tg_bandwidth else None

    @property
    def effective_flops(self) -> float | None:
        return statistics.median(self.pp_flops) if self.pp_flops else None


def run_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob(f"*/{HEADER}"))


def calibrate(root: Path) -> dict[str, Calibration]:
    """Per device name, everything the runs under `root` measured (unreadable runs are skipped:
    a plan should not fail because of an unrelated broken directory)."""
    from edgebench.results.aggregate import run_rows
    from edgebench.results.store import read_device_probes, read_header

    found: dict[str, Calibration] = {}
    model_cache: dict[str, ModelInfo | None] = {}
    for run in run_dirs(root):
        try:
            header = read_header(run)
            rows = run_rows(run)
            probes = read_device_probes(run)
        except (EdgebenchError, OSError, ValueError, KeyError):
            continue
        arch = {}
        for probe in probes:
            if isinstance(probe.facts, dict):
                cal = found.setdefault(probe.device, Calibration(probe.device))
                cal.probe, cal.probe_run = probe.facts, run.name  # sorted by name = by time
                arch[probe.device] = probe.facts.get("arch")
        models = {m.get("name"): m for m in (header.profile or {}).get("models") or []}
        for row in rows:
            if row.get("status") != "done" or not row.get("avg_ts") or row.get("engine") not in MEASURING_ENGINES:
                continue
            info = _model_info(models.get(row.get("model")), row, model_cache)
            if info is None:
                continue
            cal = found.setdefault(row["device"], Calibration(row["device"]))
            # which weights were repacked, and so how fast they were read, depends on the CPU
            cpu_arch = arch.get(row["device"]) or (cal.probe or {}).get("arch") or Runtime.cpu_arch
            runtime = Runtime(kv_type=row.get("type_k") or "f16", cpu_arch=cpu_arch)
            n_prompt, n_gen, depth = row.get("n_prompt") or 0, row.get("n_gen") or 0, row.get("n_depth") or 0
            if n_gen and not n_prompt:
                cal.tg_bandwidth.append(row["avg_ts"] * bytes_per_token(info, runtime, depth + n_gen // 2))
                cal.runs.add(run.name)
            elif n_prompt and not n_gen:
                cal.pp_flops.append(row["avg_ts"] * flops_per_token(info, depth + n_prompt // 2))
                cal.runs.add(run.name)
    return found


def _model_info(model: dict | None, row: dict, cache: dict) -> ModelInfo | None:
    """The measured model's facts: its file if it is still there, its synth spec, else none."""
    key = row.get("model_sha256") or row.get("model")
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
    from edgebench.models.synth.build import shape_for
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
    """The probed facts a plan uses: total RAM, CPU architecture, physical cores."""
    if not probe:
        return {}
    memory, cpu = probe.get("memory") or {}, probe.get("cpu") or {}
    return {"ram_bytes": memory.get("total_bytes"), "arch": probe.get("arch"),
            "cores": cpu.get("physical_cores")}
