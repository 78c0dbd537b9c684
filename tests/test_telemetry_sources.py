"""Every telemetry source on every fixture device: values where it applies, a reason where not."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from edgebench.runner.telemetry import SOURCES, Context, Sampler, Unavailable, base, own_rss_kb

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"
DEVICES = ("rpi5", "jetson_orin_nano", "termux_android", "intel_laptop")
PID = 4242
RUNNER_TELEMETRY = Path(__file__).parent.parent / "edgebench" / "runner" / "telemetry"


def root(device):
    return str(FIXTURES / device)


def read(device, source, **options):
    """The fragment one source reads on a fixture (discovery + one read)."""
    options.setdefault("pid", PID)
    return SOURCES[source](Context(root(device), **options)).read()


def unavailable(device, source, **options):
    options.setdefault("pid", PID)
    with pytest.raises(Unavailable) as caught:
        SOURCES[source](Context(root(device), **options))
    return caught.value.reason


@pytest.fixture
def tree(tmp_path):
    """A writable copy of a fixture tree."""
    def copy(device):
        target = tmp_path / device
        shutil.copytree(FIXTURES / device, target)
        return target
    return copy


@pytest.fixture
def deny(monkeypatch):
    """Make paths unreadable the way Android's SELinux makes thermal zones unreadable.

    The paths are chmod 000. Root ignores mode bits, so when the tests run as root the
    file helpers are also made to refuse what the kernel would refuse an ordinary user
    (no read bit on the file, no search bit on a directory on the way), raising the
    same PermissionError the kernel raises.
    """
    changed = []

    def refuse_if_closed(path):
        path = os.path.abspath(path)
        parent = os.path.dirname(path)
        while parent != os.path.dirname(parent):
            if os.stat(parent).st_mode & 0o111 == 0:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
            parent = os.path.dirname(parent)
        if os.path.exists(path) and os.stat(path).st_mode & 0o444 == 0:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    if os.geteuid() == 0:
        real_open, real_list = base.open_file, base.list_dir

        def guarded_open(path, *args, **kwargs):
            refuse_if_closed(path)
            return real_open(path, *args, **kwargs)

        def guarded_list(path):
            refuse_if_closed(path)
            return real_list(path)

        monkeypatch.setattr(base, "open_file", guarded_open)
        monkeypatch.setattr(base, "list_dir", guarded_list)

    def apply(*paths):
        for path in paths:
            changed.append((path, stat.S_IMODE(os.stat(path).st_mode)))
            os.chmod(path, 0)

    yield apply
    for path, mode in reversed(changed):
        os.chmod(path, mode)


# --- which sources each device has ---------------------------------------------

EXPECTED = {
    "rpi5": {"memory", "thermal", "cpufreq", "load"},
    "jetson_orin_nano": {"memory", "thermal", "cpufreq", "load", "ina3221", "devfreq_gpu"},
    "termux_android": {"memory", "thermal", "cpufreq", "load", "battery", "kgsl"},
    "intel_laptop": {"memory", "thermal", "cpufreq", "load", "battery", "rapl"},
}


@pytest.mark.parametrize("device", DEVICES)
def test_availability_per_device(device):
    # a fixture device has no nvidia-smi or tegrastats, whatever the machine running the tests has
    availability = Sampler(root(device), pid=PID, nvidia_smi="/nonexistent/nvidia-smi",
                           tegrastats="/nonexistent/tegrastats").availability()
    assert list(availability) == ["memory", "affinity", "thermal", "cpufreq", "load", "battery", "rapl", "ina3221",
                                  "extra_power", "nvidia_smi", "devfreq_gpu", "tegrastats", "kgsl"]
    assert {name for name, state in availability.items() if state == "ok"} == EXPECTED[device]
    for name, state in availability.items():
        if name not in EXPECTED[device]:
            assert state.startswith("unavailable: not "), (name, state)


def test_unavailable_reasons_name_what_is_missing():
    assert unavailable("rpi5", "rapl") == "not present: sys/class/powercap"
    assert unavailable("rpi5", "battery") == "not present: sys/class/power_supply"
    assert unavailable("rpi5", "ina3221") == "not present: sys/bus/i2c/drivers/ina3221"
    assert unavailable("jetson_orin_nano", "battery") == "not present: sys/class/power_supply"
    assert unavailable("rpi5", "extra_power") == "not configured (no extra_power_paths)"


@pytest.mark.parametrize("device", DEVICES)
def test_no_made_up_readings_for_missing_sources(device):
    record = Sampler(root(device), pid=PID, nvidia_smi="/nonexistent/nvidia-smi",
                     tegrastats="/nonexistent/tegrastats").snapshot()
    present = EXPECTED[device]
    assert ("gpu" in record) == bool(present & {"devfreq_gpu", "kgsl"})
    assert "gpu_process_mib" not in record
    assert ("battery" in record) == ("battery" in present)
    assert ("energy_uj" in record) == ("rapl" in present)
    assert ("ina3221" in record) == ("ina3221" in present)
    assert ("power_w" in record) == bool(present & {"battery", "ina3221"})
    assert ("power_total_w" in record) == bool(present & {"battery", "ina3221"})


# --- memory ----------------------------------------------------------------------

@pytest.mark.parametrize("device,rss,hwm,available", [
    ("rpi5", 4571904, 4608212, 7310412),
    ("jetson_orin_nano", 4702120, 4720344, 5402388),
    ("termux_android", 4417388, 4455104, 2918840),
    ("intel_laptop", 4650240, 4690176, 11020312),
])
def test_memory(device, rss, hwm, available):
    assert read(device, "memory") == {"pid": PID, "rss_kb": rss, "hwm_kb": hwm, "mem_available_kb": available}


def test_memory_follows_a_changing_pid(tree):
    root_dir = tree("rpi5")
    shutil.copytree(root_dir / "proc" / "4242", root_dir / "proc" / "5000")
    status = root_dir / "proc" / "5000" / "status"
    status.write_text(status.read_text().replace("4571904", "123456"))
    current = {"pid": 4242}
    reader = SOURCES["memory"](Context(str(root_dir), pid=lambda: current["pid"]))
    assert reader.read()["rss_kb"] == 4571904
    current["pid"] = 5000
    assert reader.read()["rss_kb"] == 123456
    current["pid"] = 6000  # exited and gone: no RSS rather than a stale or zero one
    fragment = reader.read()
    assert fragment["pid"] == 6000 and "rss_kb" not in fragment and fragment["mem_available_kb"] == 7310412


def test_memory_without_process_or_meminfo_is_unavailable(tmp_path):
    (tmp_path / "proc").mkdir()
    with pytest.raises(Unavailable) as caught:
        SOURCES["memory"](Context(str(tmp_path), pid=PID))
    assert caught.value.reason == "not present: proc/4242/status (+1 more)"


def test_own_rss_kb_reads_a_status_field():
    assert own_rss_kb(root=root("rpi5"), pid=PID) == 4571904
    assert own_rss_kb("VmHWM", root=root("rpi5"), pid=PID) == 4608212
    assert own_rss_kb(root=root("rpi5"), pid=99999) is None
    assert own_rss_kb() > 1000  # this very process, from the real /proc


# --- thermal ---------------------------------------------------------------------

def test_thermal_rpi5():
    assert read("rpi5", "thermal") == {"thermal_c": {"cpu-thermal": 52.3}}


def test_thermal_jetson_keeps_every_zone_by_type():
    temps = read("jetson_orin_nano", "thermal")["thermal_c"]
    assert list(temps) == ["cpu-thermal", "gpu-thermal", "cv0-thermal", "cv1-thermal", "cv2-thermal",
                           "soc0-thermal", "soc1-thermal", "soc2-thermal", "tj-thermal"]
    assert temps["cpu-thermal"] == 48.531 and temps["tj-thermal"] == 48.531
    assert temps["cv0-thermal"] == -256.0


def test_thermal_duplicate_types_are_numbered():
    assert read("intel_laptop", "thermal") == {"thermal_c": {
        "acpitz": 27.8, "acpitz#2": 29.8, "INT3400 Thermal": 20.0, "x86_pkg_temp": 61.0}}


def test_thermal_android_when_readable():
    assert read("termux_android", "thermal")["thermal_c"]["cpu-1-0-usr"] == 47.9


def test_thermal_zones_sort_naturally(tree):
    root_dir = tree("rpi5")
    for n in (2, 10):
        zone = root_dir / ("sys/class/thermal/thermal_zone%d" % n)
        zone.mkdir()
        (zone / "type").write_text("zone%d\n" % n)
        (zone / "temp").write_text("%d000\n" % n)
    assert list(SOURCES["thermal"](Context(str(root_dir))).read()["thermal_c"]) == [
        "cpu-thermal", "zone2", "zone10"]


def test_thermal_extra_paths_list_and_mapping(tree):
    root_dir = tree("rpi5")
    (root_dir / "sys/devices/platform/rp1_adc").mkdir(parents=True)
    (root_dir / "sys/devices/platform/rp1_adc/temp1_input").write_text("41250\n")
    extra = "/sys/devices/platform/rp1_adc/temp1_input"
    listed = SOURCES["thermal"](Context(str(root_dir), extra_thermal_paths=[extra])).read()
    assert listed == {"thermal_c": {"cpu-thermal": 52.3, extra: 41.25}}
    named = SOURCES["thermal"](Context(str(root_dir), extra_thermal_paths={"rp1": extra})).read()
    assert named == {"thermal_c": {"cpu-thermal": 52.3, "rp1": 41.25}}


def test_thermal_only_extra_paths_on_a_device_without_zones(tmp_path):
    (tmp_path / "hwmon").mkdir()
    (tmp_path / "hwmon/temp1_input").write_text("38000\n")
    reader = SOURCES["thermal"](Context(str(tmp_path), extra_thermal_paths={"board": "/hwmon/temp1_input"}))
    assert reader.read() == {"thermal_c": {"board": 38.0}}


def test_thermal_missing_everywhere_is_unavailable(tmp_path):
    with pytest.raises(Unavailable) as caught:
        SOURCES["thermal"](Context(str(tmp_path)))
    assert caught.value.reason == "not present: sys/class/thermal"


def test_thermal_zone_that_errors_is_dropped_not_zeroed(tree):
    root_dir = tree("intel_laptop")
    (root_dir / "sys/class/thermal/thermal_zone1/temp").write_text("")  # e.g. sensor answering nothing
    temps = SOURCES["thermal"](Context(str(root_dir))).read()["thermal_c"]
    assert temps == {"acpitz": 27.8, "INT3400 Thermal": 20.0, "x86_pkg_temp": 61.0}


# --- permission denied (Android SELinux, root-only RAPL) -----------------------------

def test_thermal_files_denied_is_unavailable_with_reason(tree, deny):
    root_dir = tree("termux_android")
    temps = sorted(root_dir.glob("sys/class/thermal/thermal_zone*/temp"))
    deny(*temps)
    with pytest.raises(Unavailable) as caught:
        SOURCES["thermal"](Context(str(root_dir)))
    assert caught.value.reason == "permission denied: sys/class/thermal/thermal_zone0/temp (+5 more)"
    # the battery stays readable: one refused source does not take others with it
    availability = Sampler(str(root_dir), pid=PID).availability()
    assert availability["thermal"].startswith("unavailable: permission denied")
    assert availability["battery"] == "ok"
    record = Sampler(str(root_dir), pid=PID).snapshot()
    assert "thermal_c" not in record and record["battery"]["battery"]["capacity_pct"] == 64


def test_denial_outranks_absence_in_the_reason(tree, deny):
    root_dir = tree("termux_android")
    (root_dir / "sys/class/thermal/thermal_zone0/temp").unlink()
    deny(*sorted(root_dir.glob("sys/class/thermal/thermal_zone*/temp")))
    with pytest.raises(Unavailable) as caught:
        SOURCES["thermal"](Context(str(root_dir)))
    assert caught.value.reason == "permission denied: sys/class/thermal/thermal_zone1/temp (+4 more)"


def test_thermal_listing_denied_is_unavailable_with_reason(tree, deny):
    root_dir = tree("termux_android")
    deny(root_dir / "sys/class/thermal")
    with pytest.raises(Unavailable) as caught:
        SOURCES["thermal"](Context(str(root_dir)))
    assert caught.value.reason == "permission denied: sys/class/thermal"


def test_some_zones_denied_keeps_the_readable_ones(tree, deny):
    root_dir = tree("termux_android")
    deny(root_dir / "sys/class/thermal/thermal_zone0/temp", root_dir / "sys/class/thermal/thermal_zone3/temp")
    temps = SOURCES["thermal"](Context(str(root_dir))).read()["thermal_c"]
    assert sorted(temps) == ["cpu-0-0-usr", "cpu-1-0-usr", "skin-therm", "xo-therm"]


def test_rapl_counter_denied_is_unavailable(tree, deny):
    root_dir = tree("intel_laptop")
    deny(*root_dir.glob("sys/class/powercap/intel-rapl:*/energy_uj"))
    with pytest.raises(Unavailable) as caught:
        SOURCES["rapl"](Context(str(root_dir)))
    assert caught.value.reason.startswith("permission denied: sys/class/powercap/intel-rapl:")


def test_permission_denied_by_the_real_kernel():
    """No emulation: an unprivileged process, a mode-000 file, the kernel says EACCES.

    As root the check runs in a forked child that drops to uid/gid 65534 first.
    """
    scratch = tempfile.mkdtemp(prefix="edgebench-perm-")
    try:
        os.chmod(scratch, 0o755)
        root_dir = os.path.join(scratch, "android")
        shutil.copytree(root("termux_android"), root_dir)
        for temp in Path(root_dir).glob("sys/class/thermal/thermal_zone*/temp"):
            os.chmod(temp, 0)
        reading, writing = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover (runs in the child)
            os.close(reading)
            try:
                if os.geteuid() == 0:
                    os.setgid(65534)
                    os.setuid(65534)
                answer = Sampler(root_dir, pid=PID).availability()
            except BaseException as exc:
                answer = {"error": repr(exc)}
            os.write(writing, json.dumps(answer).encode())
            os._exit(0)
        os.close(writing)
        with os.fdopen(reading) as pipe:
            answer = json.loads(pipe.read())
        os.waitpid(child, 0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert answer.get("thermal") == \
        "unavailable: permission denied: sys/class/thermal/thermal_zone0/temp (+5 more)", answer
    assert answer["battery"] == "ok" and answer["cpufreq"] == "ok"


# --- cpufreq ---------------------------------------------------------------------

def test_cpufreq_rpi5():
    assert read("rpi5", "cpufreq") == {
        "cpufreq_khz": {"policy0": {"cur": 2400000, "max": 2400000, "scaling_max": 2400000}}}


def test_cpufreq_jetson():
    assert read("jetson_orin_nano", "cpufreq") == {"cpufreq_khz": {
        "policy0": {"cur": 1510400, "max": 1510400, "scaling_max": 1510400},
        "policy4": {"cur": 1344000, "max": 1510400, "scaling_max": 1510400}}}


def test_cpufreq_android_records_a_lowered_scaling_max():
    policies = read("termux_android", "cpufreq")["cpufreq_khz"]
    assert list(policies) == ["policy0", "policy4", "policy7"]
    assert policies["policy7"] == {"cur": 2073600, "max": 2841600, "scaling_max": 2073600}


def test_cpufreq_intel_pstate_has_no_hardware_cur_but_reads_scaling_cur():
    policies = read("intel_laptop", "cpufreq")["cpufreq_khz"]
    assert len(policies) == 8
    assert policies["policy3"] == {"cur": 3788101, "max": 4700000, "scaling_max": 4700000}


def test_cpufreq_falls_back_to_cpuinfo_cur_freq(tree):
    root_dir = tree("jetson_orin_nano")
    (root_dir / "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq").unlink()
    policies = SOURCES["cpufreq"](Context(str(root_dir))).read()["cpufreq_khz"]
    assert policies["policy0"]["cur"] == 1497600  # the hardware-read value
    assert policies["policy4"]["cur"] == 1344000


def test_cpufreq_missing_is_unavailable(tmp_path):
    with pytest.raises(Unavailable) as caught:
        SOURCES["cpufreq"](Context(str(tmp_path)))
    assert caught.value.reason == "not present: sys/devices/system/cpu/cpufreq"


# --- load ------------------------------------------------------------------------

@pytest.mark.parametrize("device,loads", [
    ("rpi5", (3.87, 2.14, 0.93)),
    ("jetson_orin_nano", (5.02, 3.71, 1.88)),
    ("termux_android", (8.91, 6.02, 3.11)),
    ("intel_laptop", (6.73, 4.02, 2.20)),
])
def test_load(device, loads):
    assert read(device, "load") == dict(zip(("load1", "load5", "load15"), loads))


def test_load_missing_is_unavailable(tmp_path):
    with pytest.raises(Unavailable) as caught:
        SOURCES["load"](Context(str(tmp_path)))
    assert caught.value.reason == "not present: proc/loadavg"


# --- battery ---------------------------------------------------------------------

def test_battery_android_discharging():
    fragment = read("termux_android", "battery")
    assert fragment["battery"] == {"battery": {
        "current_ua": -412000, "voltage_uv": 3987000, "temp_c": 31.2, "capacity_pct": 64,
        "status": "Discharging"}}
    # only the supply of type Battery: not the USB port, not the BMS fuel gauge
    assert fragment["power_w"] == {"battery": pytest.approx(0.412 * 3.987)}


def test_battery_laptop_uses_power_now():
    fragment = read("intel_laptop", "battery")
    assert fragment["battery"] == {"BAT0": {
        "voltage_uv": 11923000, "power_uw": 9871000, "capacity_pct": 81, "status": "Discharging"}}
    assert fragment["power_w"] == {"BAT0": pytest.approx(9.871)}


def test_battery_positive_current_gives_the_same_watts(tree):
    root_dir = tree("termux_android")
    (root_dir / "sys/class/power_supply/battery/current_now").write_text("412000\n")
    fragment = SOURCES["battery"](Context(str(root_dir))).read()
    assert fragment["battery"]["battery"]["current_ua"] == 412000
    assert fragment["power_w"]["battery"] == pytest.approx(1.642644)


def test_battery_charging_reports_no_device_power(tree):
    root_dir = tree("termux_android")
    (root_dir / "sys/class/power_supply/battery/status").write_text("Charging\n")
    (root_dir / "sys/class/power_supply/battery/current_now").write_text("1500000\n")
    fragment = SOURCES["battery"](Context(str(root_dir))).read()
    assert fragment["battery"]["battery"]["status"] == "Charging"
    assert fragment["battery"]["battery"]["current_ua"] == 1500000
    assert "power_w" not in fragment


def test_battery_current_in_milliamps_by_override(tree):
    root_dir = tree("termux_android")
    (root_dir / "sys/class/power_supply/battery/current_now").write_text("-412\n")
    fragment = SOURCES["battery"](Context(str(root_dir), battery_current_unit="mA")).read()
    assert fragment["battery"]["battery"]["current_ua"] == -412000
    assert fragment["power_w"]["battery"] == pytest.approx(1.642644)
    with pytest.raises(ValueError):
        SOURCES["battery"](Context(str(root_dir), battery_current_unit="A"))


def test_battery_absent_when_only_mains_and_usb(tree):
    root_dir = tree("intel_laptop")
    shutil.rmtree(root_dir / "sys/class/power_supply/BAT0")
    with pytest.raises(Unavailable) as caught:
        SOURCES["battery"](Context(str(root_dir)))
    assert caught.value.reason == "not present: no Battery in sys/class/power_supply"


def test_battery_denied_reads_as_denied_not_absent(tree, deny):
    root_dir = tree("intel_laptop")
    deny(root_dir / "sys/class/power_supply/BAT0/type")
    with pytest.raises(Unavailable) as caught:
        SOURCES["battery"](Context(str(root_dir)))
    assert caught.value.reason == "permission denied: sys/class/power_supply/BAT0/type"
    android = tree("termux_android")
    deny(*(android / "sys/class/power_supply/battery").iterdir())
    with pytest.raises(Unavailable) as caught:
        SOURCES["battery"](Context(str(android)))
    assert caught.value.reason.startswith("permission denied: sys/class/power_supply/battery/")


# --- RAPL ------------------------------------------------------------------------

def test_rapl_top_level_domains_only():
    assert read("intel_laptop", "rapl") == {
        "energy_uj": {"package-0": 48213377109, "psys": 142981559612},
        "energy_range_uj": {"package-0": 262143328850, "psys": 262143328850},
    }


@pytest.mark.parametrize("device", ["rpi5", "jetson_orin_nano", "termux_android"])
def test_rapl_unavailable_off_intel(device):
    assert unavailable(device, "rapl") == "not present: sys/class/powercap"


# --- Jetson INA3221 ------------------------------------------------------------------

def test_ina3221_hwmon_rails():
    fragment = read("jetson_orin_nano", "ina3221")
    assert fragment["ina3221"] == {
        "VDD_IN": {"mv": 5056, "ma": 1472},
        "VDD_CPU_GPU_CV": {"mv": 5048, "ma": 392},
        "VDD_SOC": {"mv": 5048, "ma": 624},
    }
    assert fragment["power_w"] == {
        "VDD_IN": pytest.approx(7.442432),
        "VDD_CPU_GPU_CV": pytest.approx(1.978816),
        "VDD_SOC": pytest.approx(3.149952),
    }


def test_ina3221_only_the_input_rail_is_a_device_total():
    reader = SOURCES["ina3221"](Context(root("jetson_orin_nano")))
    assert reader.total_rails == ("VDD_IN",)


def test_ina3221_older_l4t_iio(tmp_path):
    iio = tmp_path / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0"
    iio.mkdir(parents=True)
    for channel, (name, mw) in enumerate([("POM_5V_IN", 4120), ("POM_5V_GPU", 612), ("POM_5V_CPU", 1450)]):
        (iio / ("rail_name_%d" % channel)).write_text(name + "\n")
        (iio / ("in_power%d_input" % channel)).write_text("%d\n" % mw)
    (tmp_path / "sys/bus/i2c/drivers/ina3221x/uevent").write_text("\n")
    reader = SOURCES["ina3221"](Context(str(tmp_path)))
    assert reader.read() == {"power_w": {"POM_5V_IN": 4.12, "POM_5V_GPU": 0.612, "POM_5V_CPU": 1.45}}
    assert reader.total_rails == ("POM_5V_IN",)


def test_ina3221_unconnected_channel_is_skipped(tree):
    root_dir = tree("jetson_orin_nano")
    hwmon = root_dir / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    (hwmon / "in3_label").write_text("NC\n")
    assert sorted(SOURCES["ina3221"](Context(str(root_dir))).read()["power_w"]) == ["VDD_CPU_GPU_CV", "VDD_IN"]


@pytest.mark.parametrize("device", ["rpi5", "termux_android", "intel_laptop"])
def test_ina3221_unavailable_off_jetson(device):
    assert unavailable(device, "ina3221") == "not present: sys/bus/i2c/drivers/ina3221"


# --- extra power paths -----------------------------------------------------------------

def test_extra_power_paths(tree):
    root_dir = tree("rpi5")
    meter = root_dir / "sys/class/hwmon/hwmon3"
    meter.mkdir(parents=True)
    (meter / "power1_input").write_text("6120000\n")
    (meter / "usb_mw").write_text("1500\n")
    reader = SOURCES["extra_power"](Context(str(root_dir), extra_power_paths=[
        "/sys/class/hwmon/hwmon3/power1_input",
        {"name": "usb", "path": "/sys/class/hwmon/hwmon3/usb_mw", "unit": "mW", "total": False},
    ]))
    assert reader.read() == {"power_w": {"/sys/class/hwmon/hwmon3/power1_input": pytest.approx(6.12),
                                         "usb": pytest.approx(1.5)}}
    assert reader.total_rails == ("/sys/class/hwmon/hwmon3/power1_input",)


def test_extra_power_path_missing_is_unavailable():
    assert unavailable("rpi5", "extra_power", extra_power_paths=["/sys/class/hwmon/hwmon9/power1_input"]) \
        == "not present: sys/class/hwmon/hwmon9/power1_input"


def test_extra_power_bad_spec_is_reported_not_raised_by_the_sampler():
    sampler = Sampler(root("rpi5"), pid=PID, extra_power_paths=[{"path": "/x", "unit": "kW"}])
    assert sampler.availability()["extra_power"].startswith("unavailable: error: ValueError")


# --- what runs on the device ---------------------------------------------------------


