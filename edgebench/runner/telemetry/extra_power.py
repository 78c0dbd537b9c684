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

# unit -> factor to W; device profiles and job checks read this same table
UNITS = {"uW": 1e-6, "mW": 1e-3, "W": 1.0}


@register("extra_power")
def discover(ctx: Context) -> Reader:
    if not ctx.extra_power_paths:
        raise Unavailable("not configured (no extra_power_paths)")
    problems = Problems(ctx.root)
    meters, totals = [], []
    for entry in ctx.extra_power_paths:
        spec = entry if isinstance(entry, dict) else {"path": entry}
        unit = spec.get("unit", "uW")
        if unit not in UNITS or "path" not in spec:
            raise ValueError("extra_power_paths entry needs a path and a unit in %s: %r" % (sorted(UNITS), entry))
        name = str(spec.get("name") or spec["path"])
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

