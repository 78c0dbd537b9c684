"""Intel RAPL energy counters (µJ) from sys/class/powercap.

Only top-level domains `intel-rapl:N` are read: the sub-zones (core, uncore,
dram) are parts of or beside the package and would be counted twice if summed,
and `intel-rapl-mmio:N` is a second interface to the same package counter.
`psys` (platform), when present, is top-level too and covers the package;
the energy hook below prefers it. Counters wrap at max_energy_range_uj, which each
record carries so a summary can unwrap deltas without touching the device again
(wrap-aware pair by pair, so several wraps in a long window are fine).
energy_uj has been root-only since Linux 5.10 (PLATYPUS), so "permission
denied" is the usual answer for an unprivileged runner.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Tuple

from .base import Context, Problems, Reader, entries, read_int, register, try_int, try_text

POWERCAP = "sys/class/powercap"
TOP_LEVEL = re.compile(r"^intel-rapl:\d+$")


def counter_delta(previous: int, current: int, limit: Optional[int]) -> Optional[int]:
    """Increase of a counter that restarts from 0 after reaching `limit`; None if unknowable."""
    if current >= previous:
        return current - previous
    if limit is None or previous > limit:
        return None
    return limit - previous + current


def energy_series(window) -> List[List[Tuple[float, float]]]:
    """Cumulative (t, joules) per chosen RAPL domain: psys if present, else every package."""
    records = window.records
    domains = set()
    for record in records:
        domains.update(record.get("energy_uj") or {})
    # psys is the whole platform and already contains the package(s)
    chosen = ["psys"] if "psys" in domains else sorted(domains)
    result = []
    for domain in chosen:
        points = [(r["t"], r["energy_uj"][domain], (r.get("energy_range_uj") or {}).get(domain))
                  for r in records if domain in (r.get("energy_uj") or {})]
        if len(points) < 2:
            continue
        cumulative, total = [(points[0][0], 0.0)], 0.0
        for (_, before, _), (t, after, limit) in zip(points, points[1:]):
            delta = counter_delta(before, after, limit)
            if delta is None:
                # a backwards jump we cannot unwrap: any figure would be invented
                cumulative = []
                break
            total += delta / 1e6
            cumulative.append((t, total))
        if len(cumulative) >= 2:
            result.append(cumulative)
    return result


@register("rapl", order=60, energy=energy_series)
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
