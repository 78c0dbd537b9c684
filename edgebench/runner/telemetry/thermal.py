"""Temperatures: every thermal zone plus device-specific extra files, in °C.

Zones are keyed by their `type` because zone numbers move between kernels and
boots while types do not; repeated types (laptops often have two `acpitz`)
become `acpitz`, `acpitz#2` in zone order.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

from .base import Context, Problems, Reader, entries, read_int, register, try_int, try_text

ZONES = "sys/class/thermal"


@register("thermal")
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    sensors: List[Tuple[str, str]] = []
    seen: Dict[str, int] = {}
    candidates = _zones(ctx, problems) + _extras(ctx)
    for label, path in candidates:
        try:
            read_int(path)
        except (OSError, ValueError) as exc:
            # e.g. a Wi-Fi sensor whose interface is down answers EIO/ENODATA
            problems.add(exc, path)
            continue
        seen[label] = seen.get(label, 0) + 1
        sensors.append((label if seen[label] == 1 else "%s#%d" % (label, seen[label]), path))
    if not sensors:
        raise problems.unavailable("not present: " + ZONES)

    def read() -> dict:
        temps = {}
        for key, path in sensors:
            milli = try_int(path)
            if milli is not None:
                temps[key] = milli / 1000.0
        return {"thermal_c": temps} if temps else {}

    return Reader(read)


def _zones(ctx: Context, problems: Problems) -> List[Tuple[str, str]]:
    directory = ctx.path(ZONES)
    try:
        names = entries(directory, "thermal_zone")
    except OSError as exc:
        problems.add(exc, directory)
        return []
    found = []
    for name in names:
        zone = os.path.join(directory, name)
        found.append((try_text(os.path.join(zone, "type")) or name, os.path.join(zone, "temp")))
    return found


def _extras(ctx: Context) -> List[Tuple[str, str]]:
    """`extra_thermal_paths`: a list of device paths (keyed by the path itself) or a
    {name: path} mapping; each file holds millidegrees like a zone's `temp`."""
    extra = ctx.extra_thermal_paths
    pairs = extra.items() if isinstance(extra, dict) else [(p, p) for p in extra]
    return [(str(name), ctx.path(path)) for name, path in pairs]
