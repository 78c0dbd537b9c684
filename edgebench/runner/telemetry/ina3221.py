"""Jetson power rails from the on-module INA3221 monitors.

Current L4T exposes them through hwmon (inN_label, inN_input mV, currN_input mA);
older L4T through the ina3221x IIO driver (rail_name_N, in_powerN_input mW).
`VDD_IN` (Orin/Xavier) and `POM_5V_IN` (Nano/TX2) feed the whole module, and
the other rails are parts of them, so only those count toward the device total.
"""

from __future__ import annotations

import os
from typing import Dict, List, Tuple

from .base import Context, Problems, Reader, entries, read_int, read_text, register, try_int

DRIVERS = "sys/bus/i2c/drivers"
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
# a channel wired to nothing is labelled NC on several carrier boards
UNCONNECTED = ("NC",)


@register("ina3221", order=70)
def discover(ctx: Context) -> Reader:
    problems = Problems(ctx.root)
    labels: Dict[str, int] = {}
    hwmon, iio = [], []
    for label, volts, amps in _hwmon_channels(ctx, problems):
        hwmon.append((_unique(label, labels), volts, amps))
    for label, milliwatts in _iio_channels(ctx, problems):
        iio.append((_unique(label, labels), milliwatts))
    if not hwmon and not iio:
        raise problems.unavailable("not present: " + DRIVERS + "/ina3221")

    def read() -> dict:
        power, rails = {}, {}
        for label, volts, amps in hwmon:
            mv, ma = try_int(volts), try_int(amps)
            if mv is None or ma is None:
                continue
            rails[label] = {"mv": mv, "ma": ma}
            power[label] = mv * ma / 1e6
        for label, milliwatts in iio:
            mw = try_int(milliwatts)
            if mw is not None:
                power[label] = mw / 1e3
        fragment = {}
        if power:
            fragment["power_w"] = power
        if rails:
            fragment["ina3221"] = rails
        return fragment

    totals = [label for label, _, _ in hwmon] + [label for label, _ in iio]
    return Reader(read, total_rails=[t for t in totals if t.split("#")[0] in INPUT_RAILS], total_rank=1)


def _hwmon_channels(ctx: Context, problems: Problems) -> List[Tuple[str, str, str]]:
    found = []
    for device in _devices(ctx, "ina3221", problems):
        for hw in _listing(os.path.join(device, "hwmon"), "hwmon", problems):
            folder = os.path.join(device, "hwmon", hw)
            # only labelled channels are rails; in4-in7 are shunt/sum voltages without a current
            for name in _listing(folder, "in", problems):
                if not name.endswith("_label"):
                    continue
                channel = name[len("in"):-len("_label")]
                label = _text(os.path.join(folder, name), problems)
                volts = os.path.join(folder, "in%s_input" % channel)
                amps = os.path.join(folder, "curr%s_input" % channel)
                if label and label not in UNCONNECTED and _ints(problems, volts, amps):
                    found.append((label, volts, amps))
    return found


def _iio_channels(ctx: Context, problems: Problems) -> List[Tuple[str, str]]:
    found = []
    for device in _devices(ctx, "ina3221x", problems):
        for dev in _listing(device, "iio:device", problems):
            folder = os.path.join(device, dev)
            for name in _listing(folder, "rail_name_", problems):
                channel = name[len("rail_name_"):]
                label = _text(os.path.join(folder, name), problems)
                milliwatts = os.path.join(folder, "in_power%s_input" % channel)
                if label and label not in UNCONNECTED and _ints(problems, milliwatts):
                    found.append((label, milliwatts))
    return found


def _devices(ctx: Context, driver: str, problems: Problems) -> List[str]:
    directory = ctx.path(DRIVERS, driver)
    # the driver folder also holds bind/unbind/uevent; devices are "<bus>-<addr>"
    return [os.path.join(directory, n) for n in _listing(directory, "", problems, quiet=True)
            if "-" in n and os.path.isdir(os.path.join(directory, n))]


def _listing(directory: str, prefix: str, problems: Problems, quiet: bool = False) -> List[str]:
    try:
        return entries(directory, prefix)
    except OSError as exc:
        # a missing driver folder is the normal non-Jetson case, not worth a reason
        if not (quiet and isinstance(exc, FileNotFoundError)):
            problems.add(exc, directory)
        return []


def _text(path: str, problems: Problems):
    try:
        return read_text(path)
    except OSError as exc:
        problems.add(exc, path)
        return None


def _ints(problems: Problems, *paths: str) -> bool:
    for path in paths:
        try:
            read_int(path)
        except (OSError, ValueError) as exc:
            problems.add(exc, path)
            return False
    return True


def _unique(label: str, seen: Dict[str, int]) -> str:
    seen[label] = seen.get(label, 0) + 1
    return label if seen[label] == 1 else "%s#%d" % (label, seen[label])
