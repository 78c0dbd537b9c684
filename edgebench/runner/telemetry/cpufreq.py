"""CPU frequency per cpufreq policy (one policy per cluster), in kHz.

`max` is the hardware ceiling (cpuinfo_max_freq); `scaling_max` is the ceiling
the kernel currently allows, which thermal daemons and power modes lower, so a
drop there is throttling even when `cur` looks steady.

Window summary: `min_freq_ratio`, the lowest cur/max over all policies and records. Caveat: an
idle cluster (fewer threads than cores, big.LITTLE) or an Intel all-core load below single-core
turbo also sit below 1.0 without throttling. It judges a window throttled by "freq_ratio" when
that is below THROTTLE_RATIO (or the `throttle_ratio` limit), and by "scaling_max" when a
policy's scaling_max is below its hardware max (a thermal daemon or power mode capping it).
Row column `min_freq_ratio`: the lowest over the repetitions.
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import Context, Problems, Reader, entries, first_readable, register, try_int
from .columns import Column, smallest

POLICIES = "sys/devices/system/cpu/cpufreq"
# a CPU policy running below this share of its maximum counts as throttled
THROTTLE_RATIO = 0.9


def freq_ratio(record: dict) -> Optional[float]:
    """The lowest cur/max over the policies of one telemetry record, or None without one."""
    ratios = [p["cur"] / p["max"] for p in (record.get("cpufreq_khz") or {}).values()
              if p.get("max") and p.get("cur") is not None]
    return min(ratios) if ratios else None


def summarize(window) -> dict:
    ratios = [r for r in (freq_ratio(record) for record in window.records) if r is not None]
    return {"min_freq_ratio": min(ratios) if ratios else None}


def throttle(window):
    policies = [p for r in window.records for p in (r.get("cpufreq_khz") or {}).values() if p.get("max")]
    if not policies:
        return None
    reasons = []
    ratio = summarize(window)["min_freq_ratio"]
    if ratio is not None and ratio < window.limits.get("throttle_ratio", THROTTLE_RATIO):
        reasons.append("freq_ratio")
    if any(p.get("scaling_max") is not None and p["scaling_max"] < p["max"] for p in policies):
        reasons.append("scaling_max")
    return reasons


@register("cpufreq", order=30, summarize=summarize, throttle=throttle,
          columns=[Column("min_freq_ratio", smallest("min_freq_ratio"))])
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    directory = ctx.path(POLICIES)
    try:
        names = entries(directory, "policy")
    except OSError as exc:
        problems.add(exc, directory)
        raise problems.unavailable("not present: " + POLICIES)
    # policy -> [(field, path)]
    plan: List[Tuple[str, List[Tuple[str, str]]]] = []
    for name in names:
        policy = os.path.join(directory, name)
        files = []
        # scaling_cur_freq first: cpuinfo_cur_freq is the hardware's own value but
        # is root-only on most kernels and missing under intel_pstate
        cur = first_readable([os.path.join(policy, f) for f in ("scaling_cur_freq", "cpuinfo_cur_freq")],
                             problems)
        if cur:
            files.append(("cur", cur))
        for field, filename in (("max", "cpuinfo_max_freq"), ("scaling_max", "scaling_max_freq")):
            path = first_readable([os.path.join(policy, filename)], problems)
            if path:
                files.append((field, path))
        if files:
            plan.append((name, files))
    if not plan:
        raise problems.unavailable("not present: " + POLICIES)

    def read() -> dict:
        policies = {}
        for name, files in plan:
            values = {}
            for field, path in files:
                khz = try_int(path)
                if khz is not None:
                    values[field] = khz
            if values:
                policies[name] = values
        return {"cpufreq_khz": policies} if policies else {}

    return Reader(read)
