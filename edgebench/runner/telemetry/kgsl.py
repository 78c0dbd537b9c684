"""Qualcomm Adreno GPUs through the kgsl driver: `/sys/class/kgsl/kgsl-3d0/`.

- `gpubusy`: "<busy> <total>" cycles since the last read, so busy/total is the load now
  (both 0 while the GPU sleeps, which is no reading, not 0 %); `gpu_busy_percentage` ("37 %")
  where the kernel has it.
- `gpuclk` and `max_gpuclk` (Hz): the clock now and the cap the thermal/power governor allows;
  `gpu_available_frequencies` (Hz) the hardware's steps.
- `temp`: millidegrees C.

Record key: `gpu` {"kgsl-3d0": {util_pct, clock_mhz, clock_max_mhz, clock_cap_mhz, temp_c, throttle}}.
SELinux refuses apps most of these files on production phones: then the source is unavailable
with "permission denied".
"""

from __future__ import annotations

import os
from typing import Optional

from .base import Context, Problems, Reader, read_text, register, try_int, try_text
from .devfreq_gpu import clock_entry, highest
from .gpu import gpu_throttle

KGSL = "sys/class/kgsl/kgsl-3d0"


def busy_pct(text: Optional[str]) -> Optional[float]:
    parts = (text or "").split()
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        return None
    busy, total = int(parts[0]), int(parts[1])
    return 100.0 * busy / total if total > 0 else None


def percentage(text: Optional[str]) -> Optional[float]:
    digits = (text or "").replace("%", "").strip()
    return float(digits) if digits.isdigit() else None


@register("kgsl", order=84, throttle=gpu_throttle)
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    folder = ctx.path(KGSL)
    clock = os.path.join(folder, "gpuclk")
    try:
        read_text(clock)
    except OSError as exc:
        problems.add(exc, clock)
        raise problems.unavailable("not present: " + KGSL)
    hardware = highest(try_text(os.path.join(folder, "gpu_available_frequencies")))

    def path(name):
        return os.path.join(folder, name)

    def read() -> dict:
        cur = try_int(clock)
        if cur is None:
            return {}
        cap = try_int(path("max_gpuclk"))
        entry = clock_entry(cur, cap, hardware)
        util = percentage(try_text(path("gpu_busy_percentage")))
        if util is None:
            util = busy_pct(try_text(path("gpubusy")))
        if util is not None:
            entry["util_pct"] = util
        milli = try_int(path("temp"))
        if milli is not None:
            entry["temp_c"] = milli / 1000.0
        return {"gpu": {"kgsl-3d0": entry}}

    return Reader(read)
