"""A new telemetry source is its module and nothing else.

The test copies the edgebench package, adds one module to its runner's telemetry package (a toy
fan-speed source with a device setting and a window key that becomes a row column), and runs the
copy's CLI end to end: the device file sets the new key, the job carries it to the real runner
zipapp, the runner reads the fixture file with it, each sample's window summarises it, and `show`
lists the row column. The copy differs from this tree by that one file, so nothing else was edited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from package_copy import REPO, copy_with, edgebench

FAN_SOURCE = '''"""A fan's speed in RPM (a test toy): one file that the device profile names."""

from .base import Context, Problems, Reader, read_int, register, try_int
from .columns import Column, largest
from .settings import Setting, Text

SETTINGS = [Setting("fan_path", Text("a device path"), "sys/class/hwmon/hwmon0/fan1_input",
                    doc="the file holding the fan's speed in RPM")]


def summarize(window):
    speeds = [r["fan_rpm"] for r in window.records if r.get("fan_rpm") is not None]
    return {"max_fan_rpm": max(speeds) if speeds else None}


@register("fan", order=90, settings=SETTINGS, summarize=summarize,
          columns=[Column("max_fan_rpm", largest("max_fan_rpm"))])
def discover(ctx: Context) -> Reader:
    path = ctx.path(ctx.settings["fan_path"])
    problems = Problems(ctx.root)
    try:
        read_int(path)
    except (OSError, ValueError) as exc:
        problems.add(exc, path)
        raise problems.unavailable("not present: " + ctx.settings["fan_path"])

    def read():
        rpm = try_int(path)
        return {} if rpm is None else {"fan_rpm": rpm}

    return Reader(read)
'''
NEW_MODULE = Path("edgebench/runner/telemetry/fan.py")


@pytest.fixture(scope="module")
def with_fan(tmp_path_factory) -> Path:
    """A copy of the edgebench package with the fan module added, and nothing else changed."""
    return copy_with(tmp_path_factory.mktemp("edgebench-with-fan"), {NEW_MODULE: FAN_SOURCE})


def workshop(tmp_path: Path, fan_path: str) -> Path:
    """A device whose telemetry root holds a fan reading 2400 RPM, set up by its device file."""
    (tmp_path / "sysroot/hwmon").mkdir(parents=True)
    (tmp_path / "sysroot/hwmon/fan1_input").write_text("2400\n")
    (tmp_path / "model.bin").write_bytes(b"the sleep engine does not read it\n" * 8)
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices/toybox.yaml").write_text(
        f"name: toybox\ntransport: local\nworkdir: {json.dumps(str(tmp_path / 'device'))}\n"
        f"telemetry:\n  root: {json.dumps(str(tmp_path / 'sysroot'))}\n  fan_path: {fan_path}\n")
    (tmp_path / "p.yaml").write_text(
        "models: [model.bin]\ntests: [tg8]\nrepetitions: 2\nwarmup: 0\n"
        "engine: {name: sleep, simulate_ts: 40}\ntelemetry: {interval_s: 0.05}\n")
    return tmp_path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_new_source_flows_from_the_device_file_to_the_rows(with_fan, tmp_path):
    work = workshop(tmp_path, "/hwmon/fan1_input")
    proc = edgebench(with_fan, "run", "p.yaml", "-d", "toybox", "-o", "results", cwd=work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = (work / "results").iterdir()

    readings = [r["fan_rpm"] for r in read_jsonl(run / "telemetry.jsonl") if "fan_rpm" in r]
    assert readings and set(readings) == {2400}
    windows = [s["window"] for s in read_jsonl(run / "samples.jsonl")]
    assert len(windows) == 2 and all(w["max_fan_rpm"] == 2400 for w in windows)

    shown = edgebench(with_fan, "show", run, "--format", "json", cwd=work)
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert row["status"] == "done" and row["max_fan_rpm"] == 2400
    # a new column goes after the ones before it: existing exports keep their layout
    assert list(row)[-2:] == ["gpu_j_per_token", "max_fan_rpm"]
    csv_header = edgebench(with_fan, "show", run, "--format", "csv", cwd=work).stdout.splitlines()[0]
    assert csv_header.endswith(",gpu_j_per_token,max_fan_rpm")


def test_a_bad_value_for_the_new_setting_names_file_line_and_key(with_fan, tmp_path):
    work = workshop(tmp_path, "''")
    proc = edgebench(with_fan, "run", "p.yaml", "-d", "toybox", "-o", "results", cwd=work)
    assert proc.returncode == 3
    assert "toybox.yaml:6: telemetry.fan_path: must not be empty" in proc.stderr
    assert "Traceback" not in proc.stderr and not (work / "results").exists()


def test_without_the_module_the_setting_does_not_exist(tmp_path):
    # the same device file against this tree: the key comes from the new module and nowhere else
    work = workshop(tmp_path, "/hwmon/fan1_input")
    proc = edgebench(REPO, "run", "p.yaml", "-d", "toybox", "-o", "results", cwd=work)
    assert proc.returncode == 3
    assert "toybox.yaml:6: telemetry.fan_path: unknown key 'fan_path'" in proc.stderr
