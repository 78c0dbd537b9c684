"""Device-profile telemetry settings from YAML to a reading: a device file sets them, device_worker
puts them in the run and cool-down jobs, and the runner zipapp reads a fixture sysfs tree with them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.config import parse_device, parse_profile
from edgebench.config.fields import to_plain
from edgebench.runner.job import TELEMETRY_DEFAULTS, parse_telemetry
from edgebench.runner.protocol import RunnerFailure
from edgebench.runner.telemetry import DEVICE, declared_settings
from edgebench.runner.telemetry.settings import PROFILE
from edgebench.sweep.cells import plan_cells
from edgebench.sweep.device_worker import cell_job, cooldown_job
from edgebench.toolchain.runner_zipapp import write_runner

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"
README = Path(__file__).resolve().parent.parent / "README.md"
# the termux fixture's battery: 3.987 V, discharging
VOLTS = 3.987


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    return write_runner(tmp_path_factory.mktemp("runner"))


@pytest.fixture
def tree(tmp_path):
    """A writable copy of a fixture device's /sys and /proc."""
    def copy(device):
        target = tmp_path / "root"
        shutil.copytree(FIXTURES / device, target)
        return target
    return copy


def device(root: Path, telemetry: str, extra: str = ""):
    """A device file with `telemetry:` written as a YAML block under the fixture root."""
    text = f"name: phone\ntelemetry:\n  root: {json.dumps(str(root))}\n{telemetry}{extra}"
    return parse_device(text, file="phone.yaml")


def runner_events(runner: Path, mode: str, job: dict) -> list[dict]:
    proc = subprocess.run([sys.executable, str(runner), mode], input=json.dumps(job), capture_output=True,
                          text=True, timeout=120)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert events and events[-1]["event"] in ("done", "error"), proc.stderr
    return events


def measure(runner: Path, tmp_path: Path, dev) -> list[dict]:
    """One cell on the `sleep` engine through the real runner; the events it sent."""
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0" * 64)
    profile = parse_profile(f"models: [{json.dumps(str(model))}]\ntests: [tg8]\nrepetitions: 1\nwarmup: 0\n"
                            f"engine: {{name: sleep, simulate_ts: 40}}\ntelemetry: {{interval_s: 0.05}}\n",
                            file=str(tmp_path / "p.yaml"))
    (cell,) = plan_cells(profile, [dev])
    events = runner_events(runner, "run", cell_job(profile, cell, str(model)))
    assert events[-1]["event"] == "done", events[-1]
    return events


def cooldown_options(flow: str):
    """A bench profile's `cooldown:` section, written as a YAML flow mapping."""
    return parse_profile(f"models: [x.gguf]\ntests: [tg8]\ncooldown: {flow}\n").cooldown


def records(events: list[dict]) -> list[dict]:
    found = [e for e in events if e["event"] == "telemetry"]
    assert found
    return found


def window(events: list[dict]) -> dict:
    (sample,) = [e for e in events if e["event"] == "sample"]
    return sample["window"]


# ---- battery_current_unit ---------------------------------------------------------------------

@pytest.mark.parametrize("setting, watts", [
    ("  battery_current_unit: mA\n", 0.412 * VOLTS),
    # left at the ABI's µA, the same file reads a thousand times too low: why the setting exists
    ("", 0.412e-3 * VOLTS),
])
def test_battery_current_in_milliamps_with_a_flipped_sign(runner, tmp_path, tree, setting, watts):
    root = tree("termux_android")
    # the vendor kernel reports mA, and positive while discharging
    (root / "sys/class/power_supply/battery/current_now").write_text("412\n")
    events = measure(runner, tmp_path, device(root, setting))
    for record in records(events):
        assert record["battery"]["battery"]["current_ua"] == (412000 if setting else 412)
        assert record["battery"]["battery"]["status"] == "Discharging"
        assert record["power_w"]["battery"] == pytest.approx(watts)
        assert record["power_total_w"] == pytest.approx(watts)
    assert window(events)["avg_power_w"] == pytest.approx(watts)


# ---- extra_power_paths -------------------------------------------------------------------------

def test_structured_power_paths_convert_their_unit_and_only_totals_count(runner, tmp_path, tree):
    root = tree("rpi5")
    (root / "meter").mkdir()
    (root / "meter/wall_mw").write_text("5200\n")
    (root / "meter/fan_w").write_text("0.75\n")
    (root / "meter/usb_uw").write_text("900000\n")
    dev = device(root, "  extra_power_paths:\n"
                       "    - {path: /meter/wall_mw, name: wall, unit: mW}\n"
                       "    - path: /meter/fan_w\n"
                       "      name: fan\n"
                       "      unit: W\n"
                       "      total: false\n"
                       "    - /meter/usb_uw\n")
    events = measure(runner, tmp_path, dev)
    assert events[1]["event"] == "start" and events[1]["telemetry"]["extra_power"] == "ok"
    for record in records(events):
        assert record["power_w"] == {"wall": pytest.approx(5.2), "fan": pytest.approx(0.75),
                                     "/meter/usb_uw": pytest.approx(0.9)}
        # two whole-device meters are summed; the fan is a part of the device and is not added
        assert record["power_total_w"] == pytest.approx(6.1)
    assert window(events)["avg_power_w"] == pytest.approx(6.1)


def test_a_meter_that_is_not_a_total_leaves_the_total_to_the_device(runner, tmp_path, tree):
    root = tree("termux_android")
    (root / "usb_mw").write_text("250\n")
    dev = device(root, "  extra_power_paths: [{path: /usb_mw, name: usb, unit: mW, total: false}]\n")
    (record, *_) = records(measure(runner, tmp_path, dev))
    assert record["power_w"]["usb"] == pytest.approx(0.25)
    assert record["power_total_w"] == pytest.approx(record["power_w"]["battery"])  # the battery's, not +0.25


# ---- extra_thermal_paths -------------------------------------------------------------------------

def test_named_thermal_paths_in_a_run_and_in_the_cool_down(runner, tmp_path, tree):
    root = tree("rpi5")
    (root / "skin_temp").write_text("61500\n")
    dev = device(root, "  extra_thermal_paths: {skin: /skin_temp}\n")
    for record in records(measure(runner, tmp_path, dev)):
        assert record["thermal_c"]["skin"] == 61.5
        assert record["thermal_c"]["cpu-thermal"] < 61.5
    options = cooldown_options("{target_c: 90, max_wait_s: 1}")
    done = runner_events(runner, "cooldown", cooldown_job(dev, options))[-1]
    assert (done["event"], done["method"], done["start_temp_c"], done["reached"]) == ("done", "target", 61.5, True)


# ---- sources ---------------------------------------------------------------------------------------

def test_sources_left_out_are_not_read_in_a_run_or_the_cool_down(runner, tmp_path, tree):
    root = tree("termux_android")
    events = measure(runner, tmp_path, device(root, "  sources: [load, battery]\n"))
    assert events[1]["event"] == "start" and events[1]["telemetry"] == {"load": "ok", "battery": "ok"}
    for record in records(events):
        assert "load1" in record and "battery" in record
        assert not {"thermal_c", "cpufreq_khz", "mem_available_kb"} & set(record)
    # the fixture's zones are above the target, but thermal is left out: nothing to wait for
    options = cooldown_options("{target_c: 20, fixed_delay_s: 0.01}")
    done = runner_events(runner, "cooldown", cooldown_job(device(root, "  sources: [load, battery]\n"), options))[-1]
    assert (done["event"], done["method"], done["start_temp_c"]) == ("done", "fixed", None)
    # the battery it was left is still checked
    low = device(root, "  sources: [load, battery]\n", "limits: {min_battery_pct: 90}\n")
    error = runner_events(runner, "cooldown", cooldown_job(low, options))[-1]
    assert error["event"] == "error" and error["kind"] == "battery" and "battery at 64%" in error["message"]


def test_the_cool_down_reads_the_battery_with_the_device_unit(runner, tree):
    root = tree("termux_android")
    dev = device(root, "  battery_current_unit: mA\n", "limits: {min_battery_pct: 30}\n")
    options = cooldown_options("{}")
    job = cooldown_job(dev, options)
    assert job["telemetry"]["battery_current_unit"] == "mA"
    done = runner_events(runner, "cooldown", job)[-1]
    assert (done["event"], done["battery_pct"]) == ("done", 64)


# ---- what the jobs carry ---------------------------------------------------------------------------

def test_the_jobs_carry_every_setting_the_runner_knows(tmp_path, tree):
    dev = device(tmp_path, "  battery_current_unit: mA\n  sources: [thermal, battery]\n"
                           "  extra_thermal_paths: [/t]\n  extra_power_paths: [/p, {path: /q, unit: W}]\n")
    job = cooldown_job(dev, cooldown_options("{}"))
    assert job["telemetry"] == {
        "root": str(tmp_path), "battery_current_unit": "mA", "sources": ["thermal", "battery"],
        "extra_thermal_paths": ["/t"], "nvidia_smi": "nvidia-smi", "tegrastats": "tegrastats",
        "extra_power_paths": ["/p", {"path": "/q", "name": None, "unit": "W", "total": True}]}
    # the device section and the profile's enabled/interval_s are all the runner's settings: a key the
    # runner reads that no profile can set would be missing here
    assert set(job["telemetry"]) | {"enabled", "interval_s"} == set(TELEMETRY_DEFAULTS)
    assert parse_telemetry(json.loads(json.dumps(job["telemetry"])), "job.telemetry")["extra_power_paths"][1] \
        == {"path": "/q", "name": None, "unit": "W", "total": True}


# ---- the runner refuses what it cannot use ----------------------------------------------------------

@pytest.mark.parametrize("telemetry, message", [
    ({"battery_current_unit": "A"}, 'job.telemetry.battery_current_unit must be one of uA, mA; got "A"'),
    ({"extra_power_paths": ["/p", {"path": "/q", "unit": "kW"}]},
     'job.telemetry.extra_power_paths[1].unit must be one of uW, mW, W; got "kW"'),
    ({"extra_power_paths": [{"unit": "mW"}]}, "job.telemetry.extra_power_paths[0].path must be a device path"),
    ({"extra_power_paths": [{"path": "/q", "total": "no"}]},
     'job.telemetry.extra_power_paths[0].total must be true or false; got "no"'),
    ({"extra_power_paths": [{"path": "/q", "units": "mW"}]},
     "job.telemetry.extra_power_paths[0] has unknown keys units"),
    ({"extra_power_paths": [5]}, "job.telemetry.extra_power_paths[0] must be a device path or an object"),
    ({"extra_thermal_paths": {"skin": 5}}, "job.telemetry.extra_thermal_paths.skin must map a name"),
    ({"extra_thermal_paths": [""]}, "job.telemetry.extra_thermal_paths[0] must be a device path"),
    ({"sources": ["gpu"]}, 'job.telemetry.sources[0] must be one of memory, affinity, thermal'),
    ({"sources": []}, "job.telemetry.sources must be a non-empty list"),
    ({"sources": ["load", "load"]}, "job.telemetry.sources[1] repeats a source"),
    ({"interval_s": 0}, "job.telemetry.interval_s must be a positive number"),
    ({"root": ""}, "job.telemetry.root must be a non-empty string"),
    ({"battery_unit": "mA"}, "job.telemetry has unknown keys battery_unit"),
])
def test_the_runner_checks_every_telemetry_setting(telemetry, message):
    with pytest.raises(RunnerFailure) as caught:
        parse_telemetry(telemetry, "job.telemetry")
    assert caught.value.kind == "job" and caught.value.message.startswith(message), caught.value.message


def test_defaults_and_nulls(tmp_path):
    checked = parse_telemetry({"sources": None, "root": str(tmp_path)}, "job.telemetry")
    assert checked == {**TELEMETRY_DEFAULTS, "root": str(tmp_path)}


def test_a_bad_setting_fails_the_run_and_the_cool_down_with_a_job_error(runner, tmp_path, tree):
    root = tree("termux_android")
    dev = device(root, "  battery_current_unit: mA\n")
    model = tmp_path / "model.bin"
    model.write_bytes(b"\0")
    profile = parse_profile(f"models: [{json.dumps(str(model))}]\ntests: [tg8]\nengine: {{name: sleep}}\n")
    job = cell_job(profile, plan_cells(profile, [dev])[0], str(model))
    job["telemetry"]["battery_current_unit"] = "µA"
    error = runner_events(runner, "run", job)[-1]
    assert (error["event"], error["kind"]) == ("error", "job")
    assert "job.telemetry.battery_current_unit must be one of uA, mA" in error["message"]
    cooldown = cooldown_job(dev, cooldown_options("{fixed_delay_s: 1}"))
    cooldown["telemetry"]["extra_power_paths"] = [{"path": "/q", "unit": "kW"}]
    error = runner_events(runner, "cooldown", cooldown)[-1]
    assert (error["event"], error["kind"]) == ("error", "job")
    assert "cooldown.telemetry.extra_power_paths[0].unit must be one of uW, mW, W" in error["message"]


# ---- the declarations are the documentation's list too ---------------------------------------------

def test_the_readme_describes_every_device_telemetry_setting():
    keys = README.read_text().split("The `telemetry:` keys, all optional")[1].split("```")[0]
    for setting in declared_settings(DEVICE):
        assert setting.doc, setting.name
        assert f"- `{setting.name}`:" in keys, f"README's device telemetry keys lack {setting.name}"


def test_the_bench_profile_sets_the_sampler_settings_the_runner_declares():
    # the device section is built from the declarations; the bench profile's is checked against them
    options = parse_profile("models: [x.gguf]\ntests: [tg8]\n").telemetry
    assert to_plain(options) == {s.name: s.default for s in declared_settings(PROFILE)}
