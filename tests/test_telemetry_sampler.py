"""The Sampler: discovery once, a real background thread, snapshots, windows, total power."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from edgebench.runner.telemetry import Sampler, base, summarize_window

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"
PID = 4242
RANGE = 262143328850


@pytest.fixture
def tree(tmp_path):
    def copy(device):
        target = tmp_path / device
        shutil.copytree(FIXTURES / device, target)
        return target
    return copy


class FakeClock:
    """Deterministic `t` values for window tests: each call returns the next one."""

    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


def wait_for(condition, what, limit=30.0):
    """Poll until true; the limit only turns a hang into a failure, nothing asserts on timing."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting for " + what
        time.sleep(0.005)


# --- the thread --------------------------------------------------------------------

def test_thread_samples_a_fixture_until_stopped():
    seen = []
    sampler = Sampler(str(FIXTURES / "jetson_orin_nano"), interval_s=0.01, pid=PID, on_record=seen.append)
    sampler.start()
    try:
        assert sampler.running
        wait_for(lambda: len(sampler.records) >= 5, "5 records")
    finally:
        sampler.stop()
    assert not sampler.running
    count = len(sampler.records)
    assert count >= 5 and len(seen) == count
    assert seen == sampler.records  # the callback saw every kept record, in order
    times = [r["t"] for r in sampler.records]
    assert times == sorted(times) and len(set(times)) == len(times)
    for record in sampler.records:
        assert record["thermal_c"]["cpu-thermal"] == 48.531
        assert record["cpufreq_khz"]["policy4"] == {"cur": 1344000, "max": 1510400, "scaling_max": 1510400}
        assert record["power_w"]["VDD_IN"] == pytest.approx(7.442432)
        assert record["rss_kb"] == 4702120 and record["load1"] == 5.02
        json.dumps(record, allow_nan=False)
    time.sleep(0.05)
    assert len(sampler.records) == count  # stopped means stopped
    assert sampler.errors == 0


def test_start_twice_runs_one_thread():
    sampler = Sampler(str(FIXTURES / "rpi5"), interval_s=0.01, pid=PID)
    sampler.start()
    sampler.start()
    try:
        threads = [t for t in threading.enumerate() if t.name == "edgebench-telemetry"]
        assert len(threads) == 1
    finally:
        sampler.stop()


def test_thread_survives_a_file_vanishing_mid_run(tree):
    root_dir = tree("rpi5")
    sampler = Sampler(str(root_dir), interval_s=0.01, pid=PID)
    sampler.start()
    try:
        wait_for(lambda: len(sampler.records) >= 2, "records before the removal")
        shutil.rmtree(root_dir / "sys/class/thermal/thermal_zone0")
        (root_dir / "proc/loadavg").write_text("garbage\n")
        mark = len(sampler.records)
        wait_for(lambda: len(sampler.records) >= mark + 3, "records after the removal")
        assert sampler.running
    finally:
        sampler.stop()
    last = sampler.records[-1]
    assert "thermal_c" not in last and "load1" not in last
    assert last["cpufreq_khz"]["policy0"]["cur"] == 2400000
    assert sampler.errors == 0


def test_a_failing_callback_does_not_stop_sampling():
    calls = []

    def explode(record):
        calls.append(record)
        raise RuntimeError("stdout closed")

    sampler = Sampler(str(FIXTURES / "rpi5"), interval_s=0.01, pid=PID, on_record=explode)
    sampler.start()
    try:
        wait_for(lambda: len(calls) >= 3, "3 callbacks")
        assert sampler.running
    finally:
        sampler.stop()
    assert sampler.errors >= 3


def test_discovery_happens_once(tree, monkeypatch):
    root_dir = tree("rpi5")
    sampler = Sampler(str(root_dir), interval_s=0.01, pid=PID)
    sampler.availability()
    listings = []
    real_list = base.list_dir
    monkeypatch.setattr(base, "list_dir", lambda path: listings.append(path) or real_list(path))
    # a zone appearing after discovery is not looked for: ticks only read known files
    zone = root_dir / "sys/class/thermal/thermal_zone1"
    zone.mkdir()
    (zone / "type").write_text("late\n")
    (zone / "temp").write_text("40000\n")
    sampler.start()
    try:
        wait_for(lambda: len(sampler.records) >= 3, "3 records")
    finally:
        sampler.stop()
    sampler.snapshot()
    assert listings == []
    assert all(list(r["thermal_c"]) == ["cpu-thermal"] for r in sampler.records)


# --- snapshots ---------------------------------------------------------------------

def test_snapshot_sees_a_changed_file(tree):
    root_dir = tree("rpi5")
    sampler = Sampler(str(root_dir), pid=PID)
    first = sampler.snapshot()
    (root_dir / "sys/class/thermal/thermal_zone0/temp").write_text("71250\n")
    (root_dir / "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq").write_text("1500000\n")
    second = sampler.snapshot()
    assert first["thermal_c"] == {"cpu-thermal": 52.3}
    assert second["thermal_c"] == {"cpu-thermal": 71.25}
    assert second["cpufreq_khz"]["policy0"]["cur"] == 1500000
    assert sampler.records == [first, second]
    summary = summarize_window(sampler.records, 10)
    assert summary["max_temp_c"] == 71.25 and summary["min_freq_ratio"] == 0.625


def test_snapshot_record_keys_per_device():
    keys = {device: set(Sampler(str(FIXTURES / device), pid=PID, nvidia_smi="/nonexistent").snapshot()) for device in
            ("rpi5", "jetson_orin_nano", "termux_android", "intel_laptop")}
    common = {"t", "ts", "pid", "rss_kb", "hwm_kb", "mem_available_kb", "thermal_c", "cpufreq_khz",
              "load1", "load5", "load15"}
    assert keys["rpi5"] == common
    assert keys["jetson_orin_nano"] == common | {"power_w", "power_total_w", "ina3221", "gpu", "emc_mhz"}
    assert keys["termux_android"] == common | {"battery", "power_w", "power_total_w", "gpu"}
    assert keys["intel_laptop"] == common | {"battery", "power_w", "power_total_w", "energy_uj",
                                             "energy_range_uj"}


def test_snapshot_without_the_thread_and_ts_is_wall_time():
    sampler = Sampler(str(FIXTURES / "rpi5"), pid=PID, clock=FakeClock(5.0), wall_clock=lambda: 1_700_000_000.5)
    record = sampler.snapshot()
    assert record["t"] == 5.0 and record["ts"] == 1_700_000_000.5
    assert not sampler.running


def test_restricted_sources():
    sampler = Sampler(str(FIXTURES / "rpi5"), pid=PID, sources=["thermal", "load"])
    assert sampler.availability() == {"thermal": "ok", "load": "ok"}
    assert set(sampler.snapshot()) == {"t", "ts", "thermal_c", "load1", "load5", "load15"}
    with pytest.raises(ValueError):
        Sampler(sources=["gpu_magic"])


# --- windows -------------------------------------------------------------------------

def test_records_between_brackets_the_window():
    sampler = Sampler(str(FIXTURES / "rpi5"), pid=PID, clock=FakeClock(1.0, 2.0, 3.0, 4.0, 5.0))
    for _ in range(5):
        sampler.snapshot()
    times = lambda records: [r["t"] for r in records]  # noqa: E731
    assert times(sampler.records_between(2.5, 3.5)) == [2.0, 3.0, 4.0]
    assert times(sampler.records_between(2.5, 3.5, bracket=False)) == [3.0]
    assert times(sampler.records_between(2.0, 4.0)) == [2.0, 3.0, 4.0]  # exact hits need no bracket
    assert times(sampler.records_between(0.0, 1.5)) == [1.0, 2.0]
    assert times(sampler.records_between(5.5, 9.0)) == [5.0]
    assert times(sampler.records_between(9.0, 9.5, bracket=False)) == []


def test_max_records_keeps_the_newest():
    sampler = Sampler(str(FIXTURES / "rpi5"), pid=PID, max_records=10, clock=FakeClock(*range(100)))
    for _ in range(100):
        sampler.snapshot()
    kept = [r["t"] for r in sampler.records]
    assert len(kept) <= 11 and kept[-1] == 99 and kept == sorted(kept)
    assert [r["t"] for r in sampler.records_between(98, 99)] == [98, 99]


def test_energy_window_across_a_rapl_wrap(tree):
    root_dir = tree("intel_laptop")
    counter = root_dir / "sys/class/powercap/intel-rapl:0/energy_uj"
    psys = root_dir / "sys/class/powercap/intel-rapl:1/energy_uj"
    sampler = Sampler(str(root_dir), pid=PID, clock=FakeClock(10.0, 12.0))
    counter.write_text("%d\n" % (RANGE - 10_000_000))
    psys.write_text("%d\n" % (RANGE - 5_000_000))
    sampler.snapshot()
    counter.write_text("20000000\n")
    psys.write_text("45000000\n")
    sampler.snapshot()
    summary = summarize_window(sampler.records_between(10.0, 12.0), 100)
    assert summary["energy_source"] == "rapl"
    assert summary["energy_j"] == pytest.approx(50.0)  # psys: 5 J to the wrap + 45 J after it
    assert summary["j_per_token"] == pytest.approx(0.5)
    # without psys the package counter is used, also across its wrap
    shutil.rmtree(root_dir / "sys/class/powercap/intel-rapl:1")
    package_only = Sampler(str(root_dir), pid=PID, clock=FakeClock(0.0, 1.0))
    counter.write_text("%d\n" % (RANGE - 10_000_000))
    package_only.snapshot()
    counter.write_text("20000000\n")
    package_only.snapshot()
    assert summarize_window(package_only.records, 1)["energy_j"] == pytest.approx(30.0)


def test_energy_window_from_battery_power(tree):
    root_dir = tree("termux_android")
    current = root_dir / "sys/class/power_supply/battery/current_now"
    sampler = Sampler(str(root_dir), pid=PID, clock=FakeClock(0.0, 2.0))
    current.write_text("-500000\n")
    sampler.snapshot()
    current.write_text("-1500000\n")
    sampler.snapshot()
    summary = summarize_window(sampler.records, 40)
    # 0.5 A and 1.5 A at 3.987 V, trapezoid over 2 s
    assert summary["energy_source"] == "power"
    assert summary["energy_j"] == pytest.approx((0.5 + 1.5) / 2 * 3.987 * 2)
    assert summary["j_per_token"] == pytest.approx((0.5 + 1.5) / 2 * 3.987 * 2 / 40)


# --- which watts are the device's -------------------------------------------------------

def test_total_power_is_the_jetson_input_rail_not_the_sum_of_rails():
    record = Sampler(str(FIXTURES / "jetson_orin_nano"), pid=PID).snapshot()
    assert sum(record["power_w"].values()) == pytest.approx(12.5712)
    assert record["power_total_w"] == pytest.approx(7.442432)


def test_total_power_without_a_declared_input_rail_sums_the_rails(tree):
    root_dir = tree("jetson_orin_nano")
    (root_dir / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1/in1_label").write_text("VDD_GPU_SOC\n")
    record = Sampler(str(root_dir), pid=PID).snapshot()
    assert record["power_total_w"] == pytest.approx(12.5712)


def test_total_power_prefers_a_configured_meter(tree):
    root_dir = tree("jetson_orin_nano")
    (root_dir / "usbmeter").mkdir()
    (root_dir / "usbmeter/power1_input").write_text("9250000\n")
    sampler = Sampler(str(root_dir), pid=PID, extra_power_paths=[{"name": "wall", "path": "/usbmeter/power1_input"}])
    record = sampler.snapshot()
    assert record["power_w"]["wall"] == pytest.approx(9.25)
    assert record["power_total_w"] == pytest.approx(9.25)


def test_total_power_on_android_and_laptop():
    assert Sampler(str(FIXTURES / "termux_android"), pid=PID).snapshot()["power_total_w"] == \
        pytest.approx(1.642644)
    assert Sampler(str(FIXTURES / "intel_laptop"), pid=PID).snapshot()["power_total_w"] == pytest.approx(9.871)


def test_no_total_power_while_charging(tree):
    root_dir = tree("termux_android")
    (root_dir / "sys/class/power_supply/battery/status").write_text("Charging\n")
    record = Sampler(str(root_dir), pid=PID).snapshot()
    assert "power_total_w" not in record and "power_w" not in record
    assert record["battery"]["battery"]["status"] == "Charging"


# --- the runner's own use ---------------------------------------------------------------

def test_availability_and_snapshot_on_this_machine():
    sampler = Sampler(interval_s=1)
    availability = sampler.availability()
    assert availability["memory"] == "ok"
    assert all(v == "ok" or v.startswith("unavailable: ") for v in availability.values())
    record = sampler.snapshot()
    assert record["rss_kb"] > 0 and record["pid"] > 0
    keys = {"thermal": "thermal_c", "cpufreq": "cpufreq_khz", "load": "load1", "battery": "battery",
            "rapl": "energy_uj", "ina3221": "ina3221"}
    for name, key in keys.items():
        assert (key in record) == (availability[name] == "ok"), (name, availability[name])


def test_pid_callable_is_evaluated_each_tick(tree):
    root_dir = tree("rpi5")
    shutil.copytree(root_dir / "proc/4242", root_dir / "proc/777")
    status = root_dir / "proc/777/status"
    status.write_text(status.read_text().replace("VmRSS:\t 4571904 kB", "VmRSS:\t 2048 kB"))
    engine = {"pid": None}
    sampler = Sampler(str(root_dir), pid=lambda: engine["pid"] or PID)
    assert sampler.snapshot()["rss_kb"] == 4571904
    engine["pid"] = 777
    second = sampler.snapshot()
    assert second["pid"] == 777 and second["rss_kb"] == 2048
