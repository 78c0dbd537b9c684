"""Fit / does not fit, the largest context that fits, expected speed, and the quant to pick.

Every figure carries where it came from (the device profile, a probe of this machine, a probe
stored in results, a calibration from stored results, or a default), because a plan is only as
good as its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebench.config.device import DeviceProfile
from edgebench.facts.stored import StoredProbe
from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.calibrate import Calibration, describe_probe
from edgebench.plan.memory import Runtime, max_context, memory_items, total
from edgebench.plan.speed import DEFAULT_ETA_PP, DEFAULT_ETA_TG, pp_ts, tg_ts, token_cost, weights_read_per_token
from edgebench.plan.tg_fit import CACHE_GAP, TgFit

GIB = 1 << 30
# without `reserve_gb`, leave this much for the OS and everything else on the device
DEFAULT_RESERVE_GB = 1.0
LIVE_PROBE = "probed on this machine"


@dataclass(frozen=True)
class Figure:
    value: float | None
    source: str          # "profile devices/rpi5.yaml", "probe in results/<run>", "calibrated ...", "default"


@dataclass(frozen=True)
class DeviceBudget:
    name: str
    ram: Figure          # bytes
    reserve: Figure      # bytes
    bandwidth: Figure    # effective bytes/s (eta x peak), for tg
    flops: Figure        # effective FLOP/s (eta x peak), for pp
    eta_tg: Figure
    eta_pp: Figure
    cpu_arch: Figure
    cores: Figure
    calibration: Calibration | None = None
    # the probed CPU features (cpuinfo names): which weights llama.cpp repacks there
    cpu_features: Figure | None = None

    @property
    def tg_fit(self) -> TgFit | None:
        return self.calibration.tg_fit if self.calibration else None

    @property
    def usable(self) -> int | None:
        if self.ram.value is None:
            return None
        return int(self.ram.value - (self.reserve.value or 0))


def device_budget(device: DeviceProfile, cal: Calibration | None, machine: dict | None = None,
                  kept: StoredProbe | None = None) -> DeviceBudget:
    """`machine`: facts probed just now, given when the device is this machine; `kept`: the last probe
    `devices check` kept (facts/stored.py). A profile's own facts still win (the user knows best); a
    live probe beats a stored one, and of the stored ones the newer wins: the probe in results may have
    been copied from another controller's `local`."""
    facts, where = device.facts, f"profile {device.source or device.name}"
    stored, stored_where = _stored_probe(cal, kept)

    def probed(key: str) -> Figure | None:
        if machine and machine.get(key):
            return Figure(machine[key], LIVE_PROBE)
        return Figure(stored[key], stored_where) if stored.get(key) else None

    if facts.ram_gb is not None:
        ram = Figure(facts.ram_gb * GIB, where)
    else:
        ram = probed("ram_bytes") or Figure(None, "unknown: set facts.ram_gb or run a benchmark on it")
    reserve = (Figure(facts.reserve_gb * GIB, where) if facts.reserve_gb is not None
               else Figure(DEFAULT_RESERVE_GB * GIB, "default"))
    # arm64 by default: edge devices are, and a wrong guess only shifts the repacked weights
    arch = probed("arch") or Figure("aarch64", "default: run `edgebench devices check` to probe it")  # type: ignore
    cores = Figure(facts.cores, where) if facts.cores is not None else probed("cores") or Figure(None, "unknown")
    bandwidth, eta_tg = _effective(facts.mem_bandwidth_gbs, DEFAULT_ETA_TG, where,
                                   cal.effective_bandwidth if cal else None, cal, "tg")
    flops, eta_pp = _effective(facts.peak_gflops, DEFAULT_ETA_PP, where,
                               cal.effective_flops if cal else None, cal, "pp")
    return DeviceBudget(device.name, ram, reserve, bandwidth, flops, eta_tg, eta_pp, arch, cores, cal,
                        probed("cpu_features"))


def _stored_probe(cal: Calibration | None, kept: StoredProbe | None) -> tuple[dict, str]:
    """The newer of the probe stored with a run and the one `devices check` kept, and where it is from."""
    in_run = (cal.probe_date or "", "run") if cal and cal.probe else None
    if kept is not None and (in_run is None or kept.date >= in_run[0]):
        return describe_probe(kept.facts), f"devices check of {kept.date[:10]}"
    if in_run is None:
        return {}, ""
    dated = f", {cal.probe_date[:10]}" if cal.probe_date else ""
    return describe_probe(cal.probe), f"probe in results/{cal.probe_run}{dated}"


def _effective(peak_g: float | None, default_eta: float, where: str, measured: float | None,
               cal: Calibration | None, kind: str) -> tuple[Figure, Figure]:
    """eta x peak: measured when results exist (eta then = measured / peak), else default x profile."""
    peak = peak_g * 1e9 if peak_g else None
    if measured:
        n = len(cal.tg if kind == "tg" else cal.pp)
        source = f"calibrated from {n} {kind} cell(s) in {len(cal.runs)} run(s)"
        eta = Figure(measured / peak if peak else None, source if peak else "n/a (no peak in profile)")
        return Figure(measured, source), eta
    if peak:
        return Figure(default_eta * peak, f"default eta x {where}"), Figure(default_eta, "default")
    results = "every stored cell ignored (listed below)" if cal and cal.ignored else "no stored results"
    return Figure(None, f"unknown: no peak in profile and {results}"), Figure(default_eta, "default")


@dataclass
class PlanCell:
    model: ModelInfo
    device: str
    n_ctx: int
    items: list            # MemoryItem
    total_bytes: int
    usable_bytes: int | None
    fits: bool | None
    max_ctx: int | None
    tg_ts: float | None        # at the start of the context
    tg_ts_full: float | None   # with the context full
    pp_ts: float | None
    # where the stored runs measured no bandwidth for a token this large: (low, high) instead of tg_ts
    tg_range: tuple[float, float] | None = None
    tg_range_full: tuple[float, float] | None = None
    weights_read: float = 0.0   # weight bytes one generated token reads (MoE: active experts only)
    runtime: Runtime | None = None
    gpu: object = None          # gpu_fit.GpuCell where the device has a GPU
    recommended: bool = False
    notes: list = field(default_factory=list)


def plan_cell(info: ModelInfo, budget: DeviceBudget, n_ctx: int, kv_type: str, n_ubatch: int = 512,
              use_mmap: bool = True, swa_full: bool = False, n_cpu_moe: int = 0) -> PlanCell:
    features = frozenset(budget.cpu_features.value) if budget.cpu_features else None
    runtime = Runtime(kv_type=kv_type, n_ubatch=n_ubatch, use_mmap=use_mmap, cpu_arch=budget.cpu_arch.value,
                      cpu_features=features,
                      swa_full=swa_full, n_cpu_moe=n_cpu_moe)
    items = memory_items(info, runtime)
    mem = total(items)
    usable = budget.usable
    native = info.context_length or 0
    # a longer context than the model was trained for is planned as asked: llama.cpp allocates it (with
    # a warning), and a benchmark's deep cell or a user's RoPE scaling does run it
    n_ctx_eff = n_ctx
    notes = []
    if native and n_ctx > native:
        notes.append(f"{info.name} was trained for {native} tokens; {n_ctx} is beyond that (llama.cpp runs it, "
                     f"quality may suffer)")
    if info.unknown_arch:
        notes.append(info.unknown_arch)
    if info.unrunnable:
        notes.append(info.unrunnable)
    speeds = [_tg(info, runtime, budget, depth, notes) for depth in (0, n_ctx_eff)]
    return PlanCell(
        model=info, device=budget.name, n_ctx=n_ctx_eff, items=items, total_bytes=mem.at(n_ctx_eff),
        usable_bytes=usable, fits=None if usable is None else mem.at(n_ctx_eff) <= usable,
        max_ctx=None if usable is None else max_context(mem, usable, native),
        tg_ts=speeds[0][0], tg_ts_full=speeds[1][0], tg_range=speeds[0][1], tg_range_full=speeds[1][1],
        pp_ts=pp_ts(info, budget.flops.value), weights_read=weights_read_per_token(info), runtime=runtime,
        notes=notes)


def _tg(info: ModelInfo, runtime: Runtime, budget: DeviceBudget, depth: int, notes: list):
    """(t/s, None), or (None, (low, high)) where the runs that calibrated the device read far less a token
    than this model does: their bandwidth may be a cache's, and memory can be several times slower."""
    fit = budget.tg_fit
    if fit is None:
        return tg_ts(info, runtime, budget.bandwidth.value, depth), None
    reads, fixed = token_cost(info, runtime, depth)
    if fit.covers(reads, fixed):
        return fit.ts(reads, fixed), None
    note = (f"{budget.name}: tg of {info.name} is a range: {fit.uncovered_reason(reads)}; the low end assumes "
            f"memory {CACHE_GAP:g}x slower than that; a run of a model this size calibrates it")
    if depth == 0:
        notes.append(note)
    return None, (fit.ts(reads, fixed, slower=CACHE_GAP), fit.ts(reads, fixed))


def recommend(cells: list[PlanCell]) -> dict[tuple, PlanCell]:
    """Per (model family, device, context) with several quants: the fitting variant with the most
    bits per weight, i.e. the highest quality that fits."""
    variants: dict[tuple, set] = {}
    for cell in cells:
        variants.setdefault((cell.model.family(), cell.device, cell.n_ctx), set()).add(cell.model.name)
    best: dict[tuple, PlanCell] = {}
    for cell in cells:
        key = (cell.model.family(), cell.device, cell.n_ctx)
        if not cell.fits or len(variants[key]) < 2:
            continue
        if key not in best or cell.model.bpw > best[key].model.bpw:
            best[key] = cell
    for cell in best.values():
        cell.recommended = True
    return best
