"""Intel RAPL energy counters (µJ) from sys/class/powercap.

Only top-level domains `intel-rapl:N` are read: the sub-zones (core, uncore,
dram) are parts of or beside the package and would be counted twice if summed,
and `intel-rapl-mmio:N` is a second interface to the same package counter.
`psys` (platform), when present, is top-level too and covers the package;
window.py prefers it. Counters wrap at max_energy_range_uj, which each record
carries so a summary can unwrap deltas without touching the device again.
energy_uj has been root-only since Linux 5.10 (PLATYPUS), so "permission
denied" is the usual answer for an unprivileged runner.
"""

from __future__ import annotations

import os
import re

from .base import Context, Problems, Reader, entries, read_int, register, try_int, try_text

POWERCAP = "sys/class/powercap"
TOP_LEVEL = re.compile(r"^intel-rapl:\d+$")


@register("rapl")
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    directory = ctx.path(POWERCAP)
    try:
        names = [n for n in entries(directory, "intel-rapl:") if TOP_LEVEL.match(n)]
    except OSError as exc:
        problems.add(exc, directory)
        names = []
    counters, ranges = [], {}
    for name in names:
        zone = os.path.join(directory, name)
        domain = try_text(os.path.join(zone, "name")) or name
        counter = os.path.join(zone, "energy_uj")
        limit = None
        for path in (counter, os.path.join(zone, "max_energy_range_uj")):
            try:
                limit = read_int(path)
            except (OSError, ValueError) as exc:
                problems.add(exc, path)
                limit = None
                break
        if limit is None:
            continue
        if domain in ranges:
            domain = "%s#%s" % (domain, name)
        counters.append((domain, counter))
        ranges[domain] = limit
    if not counters:
        raise problems.unavailable("not present: " + POWERCAP + "/intel-rapl:*")

    def read() -> dict:
        energy = {}
        for domain, path in counters:
            value = try_int(path)
            if value is not None:
                energy[domain] = value
        if not energy:
            return {}
        return {"energy_uj": energy, "energy_range_uj": {d: ranges[d] for d in energy}}

    return Reader(read)
