"""Power files a device profile names itself (`extra_power_paths`).

Each entry is either a device path whose file holds microwatts (the hwmon
`power*_input` convention, e.g. a USB-C PD or INA219 monitor), keyed by the
path, or a mapping {"path": ..., "name": ..., "unit": "uW"|"mW"|"W",
"total": true|false}. An entry counts as a whole-device meter unless it says
`"total": false`: someone who wires up an external meter usually does it to
measure the whole board, and it outranks built-in sensors for the total.
"""

from __future__ import annotations

from .base import Context, Problems, Reader, Unavailable, read_text, register, try_text
from .settings import REQUIRED, Choice, Flag, ListOf, OneOf, Record, Setting, Text, Unique

# unit -> factor to W
UNITS = {"uW": 1e-6, "mW": 1e-3, "W": 1.0}


def rail(entry) -> str:
    """The key a meter's readings go under in `power_w`: its name, else its path."""
    if isinstance(entry, dict):
        return str(entry.get("name") or entry["path"])
    return entry


_PATH = Text("a device path")
POWER_PATH = Record("PowerPath", [
    Setting("path", _PATH, REQUIRED),
    Setting("name", Text(), doc="the rail's key in `power_w`; default: the path"),
    Setting("unit", Choice(UNITS), "uW"),
    Setting("total", Flag(), True,
            doc="false for a meter on one part (a USB port, a fan): it must not stand in for the device's total"),
], what="an object with a path", properties={"rail": rail})
SETTINGS = [
    Setting("extra_power_paths",
            ListOf(OneOf(_PATH, POWER_PATH, what="a device path or an object with a path"),
                   unique=Unique("power rail", key=rail, hint="give one of them a `name:`")), [],
            doc="power meters: a path (a file in microwatts, hwmon `power*_input`, counted as the device's "
                "total) or a PowerPath mapping"),
]


@register("extra_power", order=80, settings=SETTINGS)
def discover(ctx: Context) -> Reader:
    if not ctx.settings["extra_power_paths"]:
        raise Unavailable("not configured (no extra_power_paths)")
    problems = Problems(ctx.root)
    meters, totals = [], []
    for entry in ctx.settings["extra_power_paths"]:
        spec = entry if isinstance(entry, dict) else {"path": entry}
        unit = spec.get("unit", "uW")
        if unit not in UNITS or "path" not in spec:
            raise ValueError("extra_power_paths entry needs a path and a unit in %s: %r" % (sorted(UNITS), entry))
        name = rail(spec)
        path = ctx.path(spec["path"])
        try:
            float(read_text(path))
        except (OSError, ValueError) as exc:
            problems.add(exc, path)
            continue
        meters.append((name, path, UNITS[unit]))
        if spec.get("total", True):
            totals.append(name)
    if not meters:
        raise problems.unavailable("not present")

    def read() -> dict:
        power = {}
        for name, path, scale in meters:
            text = try_text(path)
            try:
                power[name] = float(text) * scale
            except (TypeError, ValueError):
                pass
        return {"power_w": power} if power else {}

    return Reader(read, total_rails=totals, total_rank=0)

