"""Cool-down before each cell: to a target temperature on a device with a sensor, a fixed delay
without one, and one rerun of a cell that throttled. Sensors are fixture trees laid out like
/sys/class/thermal; this machine has none."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from edgebench.config import parse_device, parse_profile
from edgebench.runner.cooldown import cool_down
from edgebench.sweep.device_worker import Observer
from edgebench.sweep.execute import run_cells


def thermal_tree(root: Path, celsius: float) -> Path:
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    temp = zone / "temp"
    temp.write_text(f"{int(celsius * 1000)}\n")
    return temp


def set_temp(temp: Path, celsius: float) -> None:
    """A new reading, whole: a kernel sensor file is never seen half-written, so neither is this one
    (write_text would truncate first, and a reader in between would see no temperature at all)."""
    partial = temp.with_name(temp.name + ".new")
    partial.write_text(f"{int(celsius * 1000)}\n")
    os.replace(partial, temp)


class FakeTime:
    """A clock that only moves when the cool-down sleeps, and a device that cools while it does."""

    def __init__(self, temp: Path | None = None, start_c: float = 0, cooling_per_s: float = 0):
        self.now, self.temp, self.start_c, self.rate = 0.0, temp, start_c, cooling_per_s
        self.slept: list[float] = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        if self.temp is not None:
            set_temp(self.temp, self.start_c - self.rate * self.now)


def run_cool_down(job):
    events = []
    fake = job.pop("_time")
    cool_down(job, lambda kind, **fields: events.append({"event": kind, **fields}), sleep=fake.sleep,
              clock=fake.clock)
    return events[-1], fake


def test_waits_until_the_hottest_zone_reaches_the_target(tmp_path):
    temp = thermal_tree(tmp_path, 70)
    done, fake = run_cool_down({"target_c": 50, "max_wait_s": 300, "poll_s": 1,
                                "telemetry": {"root": str(tmp_path)}, "_time": FakeTime(temp, 70, 2.0)})
    assert done["method"] == "target" and done["reached"] is True
    assert done["start_temp_c"] == 70 and done["end_temp_c"] <= 50
    assert done["waited_s"] == 10  # 70 -> 50 at 2 °C/s


def test_the_wait_is_capped_and_says_the_target_was_not_reached(tmp_path):
    temp = thermal_tree(tmp_path, 90)
    done, fake = run_cool_down({"target_c": 50, "max_wait_s": 7, "poll_s": 2,
                                "telemetry": {"root": str(tmp_path)}, "_time": FakeTime(temp, 90, 0.5)})
    assert done["reached"] is False and done["waited_s"] == 7 and done["end_temp_c"] == 86.5
    assert fake.slept == [2, 2, 2, 1]  # the last nap stops at the cap


def test_without_a_sensor_the_fixed_delay_stands_in(tmp_path):
    done, fake = run_cool_down({"target_c": 50, "fixed_delay_s": 30, "telemetry": {"root": str(tmp_path)},
                                "_time": FakeTime()})
    assert done["method"] == "fixed" and done["waited_s"] == 30 and done["start_temp_c"] is None
    assert done["reached"] is None  # unknown, not "reached": nothing was measured


def test_already_cool_means_no_wait(tmp_path):
    temp = thermal_tree(tmp_path, 40)
    done, fake = run_cool_down({"target_c": 50, "telemetry": {"root": str(tmp_path)}, "_time": FakeTime(temp, 40)})
    assert done["waited_s"] == 0 and done["reached"] is True and fake.slept == []


# -- through a run, on the local device -----------------------------------------------------------

def device(tmp_path: Path, root: Path, extra: str = ""):
    text = f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\ntelemetry: {{root: {json.dumps(str(root))}}}\n"
    return parse_device(text + extra, file="box.yaml")


def profile(tmp_path: Path, model: Path, cooldown: str, tests="[tg20, tg30]"):
    return parse_profile(f"models: [{json.dumps(str(model))}]\ntests: {tests}\nrepetitions: 2\nwarmup: 0\n"
                         f"engine: {{name: sleep, simulate_ts: 200}}\ntelemetry: {{interval_s: 0.05}}\n"
                         f"cooldown: {cooldown}\n", file=str(tmp_path / "p.yaml"))


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_cooling_device_is_waited_for_and_the_wait_is_recorded(tmp_path, tiny_qwen35):
    temp = thermal_tree(tmp_path / "sys-root", 70)
    stop = threading.Event()

    def cool():  # the device cools by itself over real time: 4.5 s to the target, which a loaded machine's
        celsius = 70.0  # start-up (runner install, first probe) must not use up before the first cell waits
        while not stop.wait(0.3) and celsius > 30:
            celsius -= 1.0
            set_temp(temp, celsius)
    cooler = threading.Thread(target=cool, daemon=True)
    cooler.start()
    try:
        outcome = run_cells(profile(tmp_path, tiny_qwen35, "{target_c: 55, max_wait_s: 60}"),
                            [device(tmp_path, tmp_path / "sys-root")], tmp_path / "results")
    finally:
        stop.set()
    first, second = outcome.rows
    assert first["status"] == second["status"] == "done"
    assert first["start_temp_c"] > 55 and first["cooldown_s"] > 0
    started = [c for c in read_jsonl(outcome.store.path / "cells.jsonl") if c["state"] == "started"]
    assert started[0]["cooldown"]["method"] == "target" and started[0]["cooldown"]["reached"] is True
    assert started[0]["cooldown"]["end_temp_c"] <= 55
    assert second["start_temp_c"] <= 55  # already cool by then


class StateLog(Observer):
    def __init__(self):
        self.states: list[str] = []
        self.cooling_began = threading.Event()

    def device_state(self, device, state):
        self.states.append(state)
        if state.startswith("cooling down"):
            self.cooling_began.set()


def test_a_slow_sensor_reports_progress_through_the_real_runner_and_controller(tmp_path, tiny_qwen35):
    """A real sensor cools over many seconds: the runner reports the wait as it goes (the `cooling`
    event every 2 s), and the controller shows it and then measures the cell."""
    temp = thermal_tree(tmp_path / "sys-root", 62)
    stop = threading.Event()
    log = StateLog()

    def cool():  # once the wait has begun, 0.25 °C every 0.2 s: 62 -> 55 takes 5.6 s of real time
        log.cooling_began.wait(60)
        celsius = 62.0
        while not stop.wait(0.2) and celsius > 40:
            celsius -= 0.25
            set_temp(temp, celsius)
    threading.Thread(target=cool, daemon=True).start()
    try:
        outcome = run_cells(profile(tmp_path, tiny_qwen35, "{target_c: 55, max_wait_s: 60}", tests="[tg20]"),
                            [device(tmp_path, tmp_path / "sys-root")], tmp_path / "results", observer=log)
    finally:
        stop.set()
    (row,) = outcome.rows
    assert row["status"] == "done", row.get("error")
    assert row["cooldown_s"] > 5 and row["start_temp_c"] >= 61
    cooling = [s for s in log.states if s.startswith("cooling down: ")]
    assert len(cooling) >= 2 and cooling[0].endswith("target 55 °C")  # progress arrived while it waited
    started = [c for c in read_jsonl(outcome.store.path / "cells.jsonl") if c["state"] == "started"]
    assert started[0]["cooldown"]["reached"] is True and started[0]["cooldown"]["end_temp_c"] <= 55


def test_a_sensorless_device_waits_the_fixed_delay(tmp_path, tiny_qwen35):
    empty = tmp_path / "no-sensors"
    empty.mkdir()
    outcome = run_cells(profile(tmp_path, tiny_qwen35, "{target_c: 55, fixed_delay_s: 0.3}", tests="[tg20]"),
                        [device(tmp_path, empty)], tmp_path / "results")
    (row,) = outcome.rows
    assert row["status"] == "done" and row["cooldown_s"] >= 0.3 and row["start_temp_c"] is None
    started = [c for c in read_jsonl(outcome.store.path / "cells.jsonl") if c["state"] == "started"]
    assert started[0]["cooldown"]["method"] == "fixed"


@pytest.mark.parametrize("rerun", [True, False])
def test_a_throttled_cell_is_flagged_and_rerun_once_when_asked(tmp_path, tiny_qwen35, rerun):
    thermal_tree(tmp_path / "hot", 90)  # above the device's limit the whole time
    hot = device(tmp_path, tmp_path / "hot", "limits: {max_temp_c: 80}\n")
    cooldown = f"{{target_c: 95, rerun_throttled: {str(rerun).lower()}}}"
    outcome = run_cells(profile(tmp_path, tiny_qwen35, cooldown, tests="[tg20]"), [hot], tmp_path / "results")
    (row,) = outcome.rows
    assert row["status"] == "done" and row["throttled"] is True
    cells = read_jsonl(outcome.store.path / "cells.jsonl")
    done = [c for c in cells if c["state"] == "done"]
    assert [c["throttled"] for c in done] == ([True, True] if rerun else [True])
    assert row["attempt"] == (2 if rerun else 1)  # only once, even though the rerun throttled too
    if rerun:
        rerun_start = [c for c in cells if c["state"] == "started"][1]
        assert rerun_start["rerun_of"] == "throttled" and rerun_start["cooldown"]["target_c"] == 90
        assert rerun_start["cooldown"]["reached"] is True
    assert len(read_jsonl(outcome.store.path / "samples.jsonl")) == (4 if rerun else 2)  # both kept


def battery_tree(root: Path, capacity: int) -> None:
    supply = root / "sys/class/power_supply/battery"
    supply.mkdir(parents=True)
    for name, value in (("type", "Battery"), ("present", 1), ("status", "Discharging"), ("capacity", capacity),
                        ("current_now", -350000), ("voltage_now", 3900000)):
        (supply / name).write_text(f"{value}\n")


@pytest.mark.parametrize("capacity, status", [(12, "failed"), (80, "done")])
def test_a_phone_below_its_minimum_battery_is_not_measured(tmp_path, tiny_qwen35, capacity, status):
    battery_tree(tmp_path / "phone", capacity)
    phone = device(tmp_path, tmp_path / "phone", "limits: {min_battery_pct: 30}\n")
    outcome = run_cells(profile(tmp_path, tiny_qwen35, "{}", tests="[tg20, tg30]"), [phone], tmp_path / "results")
    assert [r["status"] for r in outcome.rows] == [status, status]  # checked before every cell
    if status == "failed":
        assert "battery at 12% is below the device's min_battery_pct 30%" in outcome.rows[0]["error"]
    else:
        started = [c for c in read_jsonl(outcome.store.path / "cells.jsonl") if c["state"] == "started"]
        assert started[0]["cooldown"]["battery_pct"] == 80 and started[0]["cooldown"]["method"] == "none"
