"""Before a cell: is the battery high enough, and wait until the device has cooled, so that
cells start from comparable conditions.

With a thermal sensor the wait ends when the hottest zone is at or below the
target, or at the cap. Without one there is nothing to wait for, so a fixed
delay stands in. A phone below its profile's `min_battery_pct` is not measured
(a low battery changes clocks and may end the run). The controller stores what
happened with the cell.
"""

from __future__ import annotations

import time

from .job import parse_telemetry, source_options
from .protocol import RunnerFailure
from .telemetry import SOURCES, Context, Unavailable
from .telemetry.battery import lowest_charge
from .telemetry.thermal import hottest as hottest_zone

PROGRESS_EVERY_S = 2.0


def _reader(telemetry, source):
    """The device's `source` with the same settings a run uses, or None where it is unavailable or
    left out of the device's `sources` (a source left out is never read, not even here)."""
    if telemetry["sources"] is not None and source not in telemetry["sources"]:
        return None
    try:
        return SOURCES[source](Context(root=telemetry["root"], **source_options(telemetry)))
    except Unavailable:
        return None


def _hottest_reader(telemetry):
    reader = _reader(telemetry, "thermal")
    if reader is None:
        return None
    return lambda: hottest_zone(reader.read())


def _number(job, key, default=None):
    value = job.get(key, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
        raise RunnerFailure("job", "cooldown.%s must be a non-negative number" % key)
    return value


def _battery_pct(telemetry):
    """The lowest charge of the device's batteries in %, or None without a readable one."""
    reader = _reader(telemetry, "battery")
    return None if reader is None else lowest_charge(reader.read())


def check_battery(job, telemetry):
    minimum = _number(job, "min_battery_pct")
    level = _battery_pct(telemetry) if minimum is not None else None
    if level is not None and level < minimum:
        raise RunnerFailure("battery", "battery at %g%% is below the device's min_battery_pct %g%%: charge it; "
                            "`edgebench run --resume` measures the cells it skipped" % (level, minimum))
    return level


def cool_down(job, emit, sleep=time.sleep, clock=time.monotonic):
    telemetry = parse_telemetry(job.get("telemetry") or {}, "cooldown.telemetry")
    battery_pct = check_battery(job, telemetry)
    target, cap = _number(job, "target_c"), _number(job, "max_wait_s", 300.0)
    fixed, poll = _number(job, "fixed_delay_s", 0.0), _number(job, "poll_s", 1.0) or 1.0
    hottest = _hottest_reader(telemetry) if target is not None else None
    start = clock()
    if hottest is None or hottest() is None:
        if fixed:
            sleep(fixed)
        emit("done", ok=True, method="fixed" if fixed else "none", waited_s=round(clock() - start, 3),
             start_temp_c=None, end_temp_c=None, target_c=target, reached=None, battery_pct=battery_pct)
        return
    first = temp = hottest()
    last_report = start
    while temp is not None and temp > target and clock() - start < cap:
        sleep(min(poll, max(0.0, cap - (clock() - start))))
        temp = hottest()
        if clock() - last_report >= PROGRESS_EVERY_S:
            emit("cooling", temp_c=temp, waited_s=round(clock() - start, 3))
            last_report = clock()
    emit("done", ok=True, method="target", waited_s=round(clock() - start, 3), start_temp_c=first,
         end_temp_c=temp, target_c=target, reached=temp is not None and temp <= target, battery_pct=battery_pct)
