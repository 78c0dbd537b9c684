"""GPUs driven by devfreq: Jetson's integrated GPU and Arm Mali; plus Jetson's memory clock (EMC).

Each `/sys/class/devfreq/<device>` whose name says GPU (`17000000.gpu`, `17000000.ga10b`,
`57000000.gpu`, `*.mali`, `*.gpu`) gives `cur_freq` and `max_freq` (Hz; `max_freq` is the cap a
power mode or thermal governor sets now) and `available_frequencies` (the hardware's steps).
Jetson's GPU also reports its load in per mille at `device/load`; Mali has no standard load file,
so its entry has no `util_pct` (absent, not 0). Adreno's devfreq node belongs to the kgsl source.
Jetson's EMC clock is read from BPMP's debugfs (`clk/emc/rate`, root only) when it can be.

Record keys: `gpu` {<devfreq name>: {clock_mhz, clock_max_mhz, clock_cap_mhz, util_pct, throttle}}
and `emc_mhz`. `throttle` is ["max_freq_capped"] while the cap is below the hardware maximum.
GPU temperature and power come from the thermal and INA3221 sources (see gpu.py).
"""

from __future__ import annotations

import os
from typing import Optional

from .base import Context, Problems, Reader, entries, read_text, register, try_int, try_text
from .gpu import gpu_throttle

DEVFREQ = "sys/class/devfreq"
# Jetson GPU names by generation: gm20b (Nano), gp10b (TX2), gv11b (Xavier), ga10b (Orin)
GPU_NAMES = ("gpu", "mali", "gm20b", "gp10b", "gv11b", "ga10b")
EMC_RATE = "sys/kernel/debug/bpmp/debug/clk/emc/rate"


def is_gpu(name: str) -> bool:
    lowered = name.lower()
    return "kgsl" not in lowered and any(part in lowered for part in GPU_NAMES)


def highest(text: Optional[str]) -> Optional[int]:
    """The largest number in a space-separated frequency list, or None."""
    values = [int(v) for v in (text or "").split() if v.isdigit()]
    return max(values) if values else None


def clock_entry(cur_hz: int, cap_hz: Optional[int], hardware_hz: Optional[int]) -> dict:
    """A GPU's clock against its maximum (the hardware's, else the current cap), the cap, and a
    `max_freq_capped` throttle reason when the cap sits below what the hardware can do."""
    entry = {"clock_mhz": cur_hz / 1e6}
    top = hardware_hz or cap_hz
    if top:
        entry["clock_max_mhz"] = top / 1e6
    if cap_hz is not None:
        entry["clock_cap_mhz"] = cap_hz / 1e6
    if cap_hz is not None and hardware_hz is not None:
        entry["throttle"] = ["max_freq_capped"] if cap_hz < hardware_hz else []
    return entry


@register("devfreq_gpu", order=82, throttle=gpu_throttle)
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    directory = ctx.path(DEVFREQ)
    try:
        names = [n for n in entries(directory, "") if is_gpu(n)]
    except OSError as exc:
        problems.add(exc, directory)
        names = []
    gpus = []
    for name in names:
        folder = os.path.join(directory, name)
        try:
            read_text(os.path.join(folder, "cur_freq"))
        except OSError as exc:
            problems.add(exc, os.path.join(folder, "cur_freq"))
            continue
        hardware = highest(try_text(os.path.join(folder, "available_frequencies")))
        load = os.path.join(folder, "device", "load")
        gpus.append((name, folder, hardware, load if try_int(load) is not None else None))
    if not gpus:
        raise problems.unavailable("not present: %s/<gpu>" % DEVFREQ)
    emc = ctx.path(EMC_RATE) if try_int(ctx.path(EMC_RATE)) is not None else None

    def read() -> dict:
        found = {}
        for name, folder, hardware, load in gpus:
            cur, cap = try_int(os.path.join(folder, "cur_freq")), try_int(os.path.join(folder, "max_freq"))
            if cur is None:
                continue
            entry = clock_entry(cur, cap, hardware)
            per_mille = try_int(load) if load else None
            if per_mille is not None:
                entry["util_pct"] = per_mille / 10.0
            found[name] = entry
        fragment = {"gpu": found} if found else {}
        rate = try_int(emc) if emc else None
        if rate is not None:
            fragment["emc_mhz"] = rate / 1e6
        return fragment

    return Reader(read)
