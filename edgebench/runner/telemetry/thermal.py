"""Temperatures: every thermal zone plus device-specific extra files, in °C.

Zones are keyed by their `type` because zone numbers move between kernels and
boots while types do not; repeated types (laptops often have two `acpitz`)
become `acpitz`, `acpitz#2` in zone order.

Window summary: `max_temp_c`, the hottest reading over all zones and records (a max is immune to
sensors parked at impossible lows: Orin Nano's absent DLA zones read -256). It judges a window
throttled ("temp") when that reaches the device's `max_temp_c` limit. Row column `max_temp_c`:
the hottest over the repetitions.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from .base import Context, Problems, Reader, entries, read_int, register, try_int, try_text
from .columns import Column, largest
from .settings import ListOf, MapOf, OneOf, Setting, Text

ZONES = "sys/class/thermal"
_PATH = Text("a device path")
SETTINGS = [
    Setting("extra_thermal_paths", OneOf(ListOf(_PATH), MapOf(_PATH),
                                         what="a list of device paths or a mapping of names to paths"), [],
            doc="files holding millidegrees C (like a zone's `temp`) that discovery does not find: "
                "a list keyed by path, or {name: path}"),
]


def hottest(record: dict) -> Optional[float]:
    """The hottest zone of one telemetry record, or None without a reading."""
    values = [v for v in (record.get("thermal_c") or {}).values() if isinstance(v, (int, float))]
    return max(values) if values else None


def summarize(window) -> dict:
    temps = [t for t in (hottest(r) for r in window.records) if t is not None]
    return {"max_temp_c": max(temps) if temps else None}


def throttle(window):
    limit, hot = window.limits.get("max_temp_c"), summarize(window)["max_temp_c"]
    if limit is None or hot is None:
        return None
    return ["temp"] if hot >= limit else []


@register("thermal", order=20, settings=SETTINGS, summarize=summarize, throttle=throttle,
          columns=[Column("max_temp_c", largest("max_temp_c"))])
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
    extra = ctx.settings["extra_thermal_paths"]
    pairs = extra.items() if isinstance(extra, dict) else [(p, p) for p in extra]
    return [(str(name), ctx.path(path)) for name, path in pairs]
