"""The GPU side of a plan: the card a device has, and for each model and context what an offload needs,
the most layers that fit, the largest context with every layer on the GPU, and the speed to expect.

The card comes from the device profile (`gpu: {vram_gb, unified, runtime_mib, mem_bandwidth_gbs}`), else
from this machine's driver (`-d local`), else from `plan --vram-gb`.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.config.device import DeviceProfile
from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.fit import GIB, LIVE_PROBE, DeviceBudget, Figure
from edgebench.plan.memory import MIB, Runtime
from edgebench.plan.offload import (
    DEFAULT_MARGIN_BYTES,
    GPU_RUNTIME_BYTES,
    cpu_share_of_reads,
    gpu_plan,
    max_gpu_context,
    max_gpu_layers,
)
from edgebench.plan.speed import DEFAULT_ETA_TG, bytes_read_per_token


@dataclass(frozen=True)
class GpuBudget:
    vram: Figure          # bytes
    unified: bool
    runtime: Figure       # bytes the GPU runtime takes beyond llama.cpp's buffers
    bandwidth: Figure     # effective bytes/s for generation (default eta x the profile's peak)
    margin: int           # bytes left free, as llama-fit-params' --fit-target


def gpu_budget(device: DeviceProfile, machine: dict | None, vram_gb: float | None, unified: bool | None,
               margin_mib: float) -> GpuBudget | None:
    """None when nothing says the device has a GPU."""
    gpu, where = device.gpu, f"profile {device.source or device.name}"
    if vram_gb is not None:
        vram = Figure(vram_gb * GIB, "--vram-gb")
    elif gpu.vram_gb is not None:
        vram = Figure(gpu.vram_gb * GIB, where)
    elif machine and machine.get("vram_bytes"):
        vram = Figure(machine["vram_bytes"], LIVE_PROBE + " (nvidia-smi)")
    elif gpu.unified and (device.facts.ram_gb or (machine or {}).get("ram_bytes")):
        # a unified GPU's memory is the RAM itself
        ram = device.facts.ram_gb * GIB if device.facts.ram_gb else machine["ram_bytes"]
        vram = Figure(ram, f"unified: the RAM ({where if device.facts.ram_gb else LIVE_PROBE})")
    else:
        return None
    runtime = (Figure(gpu.runtime_mib * MIB, where) if gpu.runtime_mib is not None
               else Figure(GPU_RUNTIME_BYTES, "measured on CUDA (H100, H200), plan/offload.py"))
    bandwidth = (Figure(DEFAULT_ETA_TG * gpu.mem_bandwidth_gbs * 1e9, f"default eta x {where}")
                 if gpu.mem_bandwidth_gbs else Figure(None, "unknown: set gpu.mem_bandwidth_gbs"))
    return GpuBudget(vram, bool(gpu.unified if unified is None else unified), runtime, bandwidth,
                     int(margin_mib * MIB))


@dataclass(frozen=True)
class GpuCell:
    """One model on one device's GPU at one context."""

    n_gpu_layers: int            # asked (or all)
    vram_bytes: int              # what the GPU holds at this context
    host_bytes: int              # what stays in RAM
    items: tuple                 # the GPU's MemoryItems
    fits: bool
    max_layers: int | None       # the most n_gpu_layers that fit at this context (n_layer + 1 = all)
    max_ctx_all_layers: int      # the largest context with every layer on the GPU (0: none)
    host_share: float            # of the bytes a generated token reads, the part in host memory
    tg_ts: float | None          # expected generation speed at this split, where both bandwidths are known


def gpu_cell(info: ModelInfo, runtime: Runtime, budget: DeviceBudget, gpu: GpuBudget, n_ctx: int,
             n_gpu_layers: int | None) -> GpuCell:
    """At `n_gpu_layers`, or, when it is None, at the most layers that fit (llama-fit-params' --fit)."""
    every = info.n_layer + 1
    args = (gpu.vram.value, gpu.unified, budget.usable, gpu.margin, gpu.runtime.value)
    most = max_gpu_layers(info, runtime, n_ctx, *args)
    if n_gpu_layers is None:
        ngl = every if most is None else most
    else:
        ngl = every if n_gpu_layers < 0 else min(n_gpu_layers, every)
    plan = gpu_plan(info, runtime, ngl, gpu.vram.value, gpu.unified, gpu.margin, gpu.runtime.value)
    share = cpu_share_of_reads(info, plan.split, runtime.n_cpu_moe)
    return GpuCell(
        n_gpu_layers=ngl, vram_bytes=plan.vram_at(n_ctx), host_bytes=plan.host_at(n_ctx), items=tuple(plan.gpu),
        fits=bool(plan.fits(n_ctx, budget.usable)), max_layers=most,
        max_ctx_all_layers=max_gpu_context(info, runtime, every, *args),
        host_share=share, tg_ts=_tg(info, runtime, budget, gpu, share))


def _tg(info: ModelInfo, runtime: Runtime, budget: DeviceBudget, gpu: GpuBudget, share: float) -> float | None:
    """Each side reads its share of a token's bytes at its own bandwidth, one after the other."""
    per_token = bytes_read_per_token(info, runtime, 0)
    if (share > 0 and not budget.bandwidth.value) or (share < 1 and not gpu.bandwidth.value):
        return None
    seconds = (per_token * share / budget.bandwidth.value if share else 0.0)
    seconds += per_token * (1 - share) / gpu.bandwidth.value if share < 1 else 0.0
    return 1 / seconds if seconds else None


DEFAULT_MARGIN_MIB = DEFAULT_MARGIN_BYTES / MIB
