"""Choosing devices (name, tag:X, all) and splitting a run between controllers (--shard i/N)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.config import parse_profile, select_devices
from edgebench.errors import DeviceNotFound
from edgebench.sweep.cells import parse_shard, plan_cells, shard_cells

REPO = Path(__file__).resolve().parent.parent


def fleet(tmp_path: Path) -> Path:
    directory = tmp_path / "devices"
    directory.mkdir()
    for name, tags in (("pi-a", "[sbc, pi]"), ("pi-b", "[sbc, pi]"), ("jetson", "[sbc, cuda]"),
                       ("phone", "[phone]"), ("laptop", "[laptop]")):
        (directory / f"{name}.yaml").write_text(f"name: {name}\ntransport: local\ntags: {tags}\n"
                                                f"workdir: {tmp_path / 'work' / name}\n")
    return directory


def names(devices):
    return [d.name for d in devices]


def test_selection_by_name_tag_and_all(tmp_path):
    directory = fleet(tmp_path)
    assert names(select_devices(["tag:pi"], directory)) == ["pi-a", "pi-b"]
    assert names(select_devices(["phone", "tag:sbc"], directory)) == ["phone", "jetson", "pi-a", "pi-b"]
    assert names(select_devices(["tag:sbc", "pi-a"], directory)) == ["jetson", "pi-a", "pi-b"]  # once each
    assert names(select_devices(["all"], directory)) == ["jetson", "laptop", "phone", "pi-a", "pi-b"]


def test_a_tag_nobody_has_is_an_error(tmp_path):
    with pytest.raises(DeviceNotFound, match="no device is tagged 'tpu'"):
        select_devices(["tag:tpu"], fleet(tmp_path))


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7])
def test_shards_cover_every_cell_once_and_keep_each_device_on_one_controller(tmp_path, count):
    devices = select_devices(["all"], fleet(tmp_path))
    profile = parse_profile("models: [a.gguf, b.gguf]\ntests: [pp64, tg16]\nengine: {threads: [1, 2]}\n",
                            file=str(tmp_path / "p.yaml"))
    cells = plan_cells(profile, devices)
    shards = [shard_cells(cells, i, count) for i in range(1, count + 1)]
    ids = [cell.id for shard in shards for cell in shard]
    assert sorted(ids) == sorted(cell.id for cell in cells) and len(ids) == len(set(ids)) == 5 * 2 * 2 * 2
    owners = {}
    for index, shard in enumerate(shards):
        for cell in shard:
            assert owners.setdefault(cell.device.name, index) == index


@pytest.mark.parametrize("text", ["0/2", "3/2", "2", "a/b", "1/0"])
def test_bad_shard_specs(text):
    with pytest.raises(ValueError, match="i/N"):
        parse_shard(text)


def test_run_with_a_shard_measures_only_its_devices(tmp_path, tiny_qwen35):
    directory = tmp_path / "devices"
    directory.mkdir()
    for name in ("one", "two"):
        (directory / f"{name}.yaml").write_text(f"name: {name}\ntransport: local\ntags: [box]\n"
                                                f"workdir: {tmp_path / name}\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [tg4]\nrepetitions: 1\nengine: {{threads: 2}}\n")
    common = [sys.executable, "-m", "edgebench", "run", str(profile), "-d", "tag:box", "-o", str(tmp_path / "r")]
    proc = subprocess.run(common + ["--shard", "2/2"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=os.environ)
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["shard"] == "2/2" and [c["device"] for c in meta["cells"]] == ["two"]
    bad = subprocess.run(common + ["--shard", "3/2"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and "i/N" in bad.stderr


def _timed_fake_python(tmp_path: Path, log: Path) -> Path:
    """A device 'python' that records when its runner starts and ends, and is real python otherwise."""
    script = tmp_path / "timed-python"
    script.write_text(f'#!/bin/sh\ncase "$1" in *runner.pyz) echo "start $(date +%s.%N)" >> {log};'
                      f' {sys.executable} "$@"; code=$?; echo "end $(date +%s.%N)" >> {log}; exit $code;; esac\n'
                      f'exec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return script


def test_parallel_devices_are_measured_at_the_same_time(tmp_path, tiny_qwen35):
    directory = tmp_path / "devices"
    directory.mkdir()
    logs = {}
    for name in ("one", "two"):
        logs[name] = tmp_path / f"{name}.log"
        (tmp_path / name).mkdir()
        python = _timed_fake_python(tmp_path / name, logs[name])
        (directory / f"{name}.yaml").write_text(f"name: {name}\ntransport: local\ntags: [box]\n"
                                                f"workdir: {tmp_path / 'work' / name}\npython: {python}\n")
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [tg64]\nrepetitions: 3\nengine: {{threads: 1}}\n")
    proc = subprocess.run([sys.executable, "-m", "edgebench", "run", str(profile), "-d", "tag:box", "--parallel", "2",
                           "-o", str(tmp_path / "r")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    spans = {}
    for name, log in logs.items():
        stamps = [line.split() for line in log.read_text().splitlines()]
        # the last runner start/end on each device is the measured cell (earlier ones: the probe)
        starts = [float(t) for kind, t in stamps if kind == "start"]
        ends = [float(t) for kind, t in stamps if kind == "end"]
        spans[name] = (starts[-1], ends[-1])
    (a0, a1), (b0, b1) = spans["one"], spans["two"]
    assert a0 < b1 and b0 < a1, f"cells did not overlap: {spans}"
    (run_dir,) = (tmp_path / "r").iterdir()
    rows = json.loads((run_dir / "summary.json").read_text())["rows"]
    assert sorted((r["device"], r["status"]) for r in rows) == [("one", "done"), ("two", "done")]
