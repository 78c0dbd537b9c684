"""What the GPU did in a window, from whichever GPU sources read it (nvidia_smi, devfreq_gpu, tegrastats,
kgsl).

Every GPU source adds entries to the record's `gpu` mapping with the same keys (those it can
read): mem_used_mib, mem_total_mib, util_pct, clock_mhz, clock_max_mhz, mem_clock_mhz, temp_c,
power_w, throttle. This condenses them:

- `peak_vram_mib`: the measured process's highest GPU memory (`gpu_process_mib`); None where no
  source can attribute GPU memory to a process (integrated GPUs share system RAM: see peak_rss).
  It is a sample: nvidia-smi lists processes every other tick.
- `max_vram_used_mib` / `vram_total_mib`: the whole card's highest use and its size.
- `max_gpu_temp_c`: the hottest GPU reading; where no GPU source reads a temperature, the hottest
  thermal zone named like a GPU (Jetson's `gpu-thermal`).
- `min_gpu_clock_ratio`: the lowest core clock / its maximum.
- `gpu_util_pct`: the mean utilisation.
- `gpu_power_w`, `gpu_energy_j`, `gpu_j_per_token`: the GPU's mean power, its energy over the
  window (trapezoid rule, cut to the window's bounds) and that per token; from the GPU sources'
  power, else from a power rail named like a GPU (Jetson's INA3221 `VDD_GPU_SOC`, `VDD_CPU_GPU_CV`).

Row columns: `peak_vram_mib`, the engine process's peak GPU memory as the in-process llama.cpp engine
measured it on each discrete GPU (runner/engines/gpu_memory.py: no sample can miss it), else the largest
sampled one, with `peak_vram_method` saying which; `sampled_peak_vram_mib`, the sampled one always;
the largest `max_vram_used_mib` (the whole card) and `max_gpu_temp_c`, `vram_total_mib`, the smallest
`min_gpu_clock_ratio`, the mean `gpu_power_w` over the repetitions and `gpu_j_per_token` over all their
tokens.
"""

from __future__ import annotations

from typing import List, Optional

from .base import summary
from .columns import Column, Windows, largest, per_token, smallest
from .energy import between, integrate


def entries(record: dict) -> List[dict]:
    return list((record.get("gpu") or {}).values())


def _numbers(records, pick) -> List[float]:
    return [v for v in (pick(r) for r in records) if isinstance(v, (int, float))]


def _top(values):
    return max(values) if values else None


def gpu_temp(record: dict) -> Optional[float]:
    temps = [e["temp_c"] for e in entries(record) if e.get("temp_c") is not None]
    if temps:
        return max(temps)
    zones = [v for k, v in (record.get("thermal_c") or {}).items() if "gpu" in k.lower()]
    return max(zones) if zones else None


def clock_ratio(record: dict) -> Optional[float]:
    ratios = [e["clock_mhz"] / e["clock_max_mhz"] for e in entries(record)
              if e.get("clock_mhz") is not None and e.get("clock_max_mhz")]
    return min(ratios) if ratios else None


def _gpu_power(record: dict) -> Optional[float]:
    watts = [e["power_w"] for e in entries(record) if e.get("power_w") is not None]
    if watts:
        return sum(watts)
    rails = [w for label, w in (record.get("power_w") or {}).items() if "GPU" in label.upper()]
    return sum(rails) if rails else None


def throttle_reasons(record: dict) -> Optional[List[str]]:
    """The GPU throttle reasons one record's entries report, or None when none can tell."""
    said = [e["throttle"] for e in entries(record) if e.get("throttle") is not None]
    return sorted({"gpu_" + reason for found in said for reason in found}) if said else None


def vram_total_mib(record: dict) -> Optional[float]:
    return _sum_of([e.get("mem_total_mib") for e in entries(record)])


def gpu_throttle(window):
    """A GPU source's throttle hook: the reasons its entries report, as gpu_<reason>; None when no
    entry says (an entry without `throttle` cannot tell)."""
    said = [found for found in (throttle_reasons(r) for r in window.records) if found is not None]
    return sorted({reason for found in said for reason in found}) if said else None


# how a row's peak_vram_mib was taken where no engine read the devices: nvidia-smi's per-process listing
SAMPLED = "sampled: nvidia-smi's per-process listing, every other telemetry tick (a short job can end between two)"


def _engine_memory(windows: Windows) -> dict:
    """The engine's own readings of each discrete GPU (runner/engines/gpu_memory.py), from its done event."""
    return windows.cell.get("device_memory") or {}


def peak_vram_mib(windows: Windows):
    """The engine's measured peak over its GPUs where it read them; else the sampled per-process peak."""
    measured = [d["peak_mib"] for d in _engine_memory(windows).values() if d.get("peak_mib") is not None]
    if measured:
        return round(sum(measured), 1)
    return largest("peak_vram_mib")(windows)


def peak_vram_method(windows: Windows):
    methods = sorted({d["method"] for d in _engine_memory(windows).values() if d.get("method")})
    if methods:
        return "; ".join(methods)
    return SAMPLED if largest("peak_vram_mib")(windows) is not None else None


def _card_size(windows: Windows):
    sized = [d["total_mib"] for d in _engine_memory(windows).values() if d.get("total_mib")]
    return sum(sized) if sized else largest("vram_total_mib")(windows)


@summary("gpu", order=37, columns=[
    Column("peak_vram_mib", peak_vram_mib),
    Column("peak_vram_method", peak_vram_method),
    Column("sampled_peak_vram_mib", largest("peak_vram_mib")),
    Column("max_vram_used_mib", largest("max_vram_used_mib")),
    Column("vram_total_mib", _card_size),
    Column("max_gpu_temp_c", largest("max_gpu_temp_c")),
    Column("min_gpu_clock_ratio", smallest("min_gpu_clock_ratio")),
    Column("gpu_power_w", lambda windows: _mean(windows, "gpu_power_w")),
    Column("gpu_j_per_token", per_token("gpu_energy_j")),
])
def summarize(window) -> dict:
    records = window.records
    ratios = _numbers(records, clock_ratio)
    util = _numbers(records, lambda r: _mean_of([e.get("util_pct") for e in entries(r)]))
    power = [(r["t"], w) for r, w in ((r, _gpu_power(r)) for r in records) if w is not None]
    energy = None
    if len(power) >= 2:
        covered = between(integrate(power), window.t0, window.t1)
        energy = covered[0] if covered else None
    return {
        "peak_vram_mib": _top(_numbers(records, lambda r: r.get("gpu_process_mib"))),
        "max_vram_used_mib": _top(_numbers(records, lambda r: _sum_of([e.get("mem_used_mib") for e in entries(r)]))),
        "vram_total_mib": _top(_numbers(records, vram_total_mib)),
        "max_gpu_temp_c": _top(_numbers(records, gpu_temp)),
        "min_gpu_clock_ratio": min(ratios) if ratios else None,
        "gpu_util_pct": sum(util) / len(util) if util else None,
        "gpu_power_w": sum(w for _t, w in power) / len(power) if power else None,
        "gpu_energy_j": energy,
        "gpu_j_per_token": energy / window.n_tokens if energy is not None and window.n_tokens else None,
    }


def _mean_of(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _sum_of(values):
    values = [v for v in values if v is not None]
    return sum(values) if values else None


def _mean(windows: Windows, key: str):
    return _mean_of(windows.values(key))
