"""Battery drain from sys/class/power_supply (phones, laptops).

Units per the kernel ABI: current_now µA, voltage_now µV, power_now µW,
temp 0.1 °C, capacity %. Quirks this reader knows about:

- Sign: the ABI says negative = discharging, and most Android kernels follow
  it, but ACPI laptop batteries report a positive current while discharging and
  some vendors flip it. Power is therefore abs(I*V); `status` says which way
  energy flows.
- Some vendor kernels report current_now in mA. No heuristic can tell 800 mA
  from 800 µA reliably (an idle phone really can draw under 10 mA), so the unit
  is a device setting (`battery_current_unit: mA`) rather than a guess.
- ACPI batteries in energy mode have power_now and no current_now; power_now is
  used when present.
- While charging or full, I*V is what flows into the battery, not what the
  device draws, so no power is reported then (the raw current stays recorded).
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from .base import Context, Problems, Reader, entries, read_text, register, try_int, try_text
from .settings import Choice, Setting

SUPPLIES = "sys/class/power_supply"
NUMERIC = (
    ("current_now", "current_ua"),
    ("voltage_now", "voltage_uv"),
    ("power_now", "power_uw"),
    ("temp", "temp_c"),
    ("capacity", "capacity_pct"),
)
DRAWING = ("Discharging",)
# `battery_current_unit` -> factor to µA
CURRENT_UNITS = {"uA": 1, "mA": 1000}
SETTINGS = [
    Setting("battery_current_unit", Choice(CURRENT_UNITS), "uA",
            doc="the unit of current_now: some vendor kernels report mA instead of the ABI's µA"),
]


def lowest_charge(record: dict) -> Optional[float]:
    """The lowest charge in % of the batteries in one telemetry record, or None without one."""
    levels = [b.get("capacity_pct") for b in (record.get("battery") or {}).values()]
    levels = [v for v in levels if isinstance(v, (int, float))]
    return min(levels) if levels else None


@register("battery", order=50, settings=SETTINGS)
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    directory = ctx.path(SUPPLIES)
    try:
        names = entries(directory, "")
    except OSError as exc:
        problems.add(exc, directory)
        raise problems.unavailable("not present: " + SUPPLIES)
    unit = ctx.settings["battery_current_unit"]
    current_scale = CURRENT_UNITS.get(unit)
    if current_scale is None:
        raise ValueError("battery_current_unit must be one of %s, not %r" % (", ".join(CURRENT_UNITS), unit))
    batteries: List[Tuple[str, List[Tuple[str, str]], str]] = []
    for name in names:
        supply = os.path.join(directory, name)
        try:
            kind = read_text(os.path.join(supply, "type"))
        except OSError as exc:
            # SELinux may refuse `type` too; that must read as "denied", not "no battery"
            problems.add(exc, os.path.join(supply, "type"))
            kind = None
        if kind != "Battery" and name != "battery":
            continue
        files = []
        for filename, key in NUMERIC:
            path = os.path.join(supply, filename)
            try:
                int(read_text(path))
            except (OSError, ValueError) as exc:
                problems.add(exc, path)
                continue
            files.append((key, path))
        status = os.path.join(supply, "status")
        if files:
            batteries.append((name, files, status))
    if not batteries:
        raise problems.unavailable("not present: no Battery in " + SUPPLIES)

    def read() -> dict:
        fields_by_name, power = {}, {}
        for name, files, status_path in batteries:
            fields = {}
            for key, path in files:
                raw = try_int(path)
                if raw is not None:
                    fields[key] = _convert(key, raw, current_scale)
            status = try_text(status_path)
            if status:
                fields["status"] = status
            watts = _watts(fields)
            if watts is not None and (status is None or status in DRAWING):
                power[name] = watts
            if fields:
                fields_by_name[name] = fields
        fragment = {}
        if fields_by_name:
            fragment["battery"] = fields_by_name
        if power:
            fragment["power_w"] = power
        return fragment

    return Reader(read, total_rails=[name for name, _, _ in batteries], total_rank=2)


def _watts(fields: dict):
    if "power_uw" in fields:
        return abs(fields["power_uw"]) / 1e6
    if "current_ua" in fields and "voltage_uv" in fields:
        return abs(fields["current_ua"] * fields["voltage_uv"]) / 1e12
    return None


def _convert(key: str, raw: int, current_scale: int):
    if key == "current_ua":
        return raw * current_scale
    if key == "temp_c":
        return raw / 10.0
    return raw
