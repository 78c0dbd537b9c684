"""CPU frequency per cpufreq policy (one policy per cluster), in kHz.

`max` is the hardware ceiling (cpuinfo_max_freq); `scaling_max` is the ceiling
the kernel currently allows, which thermal daemons and power modes lower, so a
drop there is throttling even when `cur` looks steady.
"""

from __future__ import annotations

import os
from typing import List, Tuple

from .base import Context, Problems, Reader, entries, first_readable, register, try_int

POLICIES = "sys/devices/system/cpu/cpufreq"


@register("cpufreq")
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
