"""The built-in local device: commands run from an empty directory, as after `pip install edgebench`."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import psutil
import pytest

from edgebench.cli import main
from edgebench.config import find_device, select_devices
from edgebench.config.lookup import builtin_local, is_builtin
from edgebench.errors import DeviceNotFound
from edgebench.facts import local
from edgebench.plan.calibrate import Calibration
from edgebench.plan.fit import LIVE_PROBE, device_budget

GIB = 1 << 30
PLAN = ["plan", "--like", "qwen3.5-4b", "--quant", "Q4_K_M", "--ctx", "262144"]


@pytest.fixture
def empty_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEBENCH_DEVICES", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def plan_json(capsys, *args) -> dict:
    assert main([*PLAN, *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_without_devices_describes_this_machine(empty_dir, capsys):
    assert main(PLAN) == 0
    out = capsys.readouterr().out
    ram = f"{psutil.virtual_memory().total / GIB:.2f} GiB"
    assert f"local: RAM {ram} ({LIVE_PROBE})" in out
    assert f"CPU {platform.machine()} ({LIVE_PROBE})" in out
    assert f"(CPU {platform.machine()})" in out      # the memory table's heading: repacking depends on it
    assert "| local | qwen3.5-4b@Q4_K_M |" in out


def test_dash_d_local_is_the_builtin_device_outside_run(empty_dir, capsys):
    assert is_builtin(find_device("local"))
    assert [d.name for d in select_devices(["local"])] == ["local"]

    (device,) = plan_json(capsys, "-d", "local")["devices"]
    assert device["device"] == "local" and device["ram_bytes"]["value"] == psutil.virtual_memory().total
    assert device["cpu_arch"] == {"value": platform.machine(), "source": LIVE_PROBE}

    model = empty_dir / "model.gguf"
    model.write_bytes(b"GGUF" + bytes(60))
    assert main(["push", str(model), "-d", "local"]) == 0
    assert "already on local" in capsys.readouterr().out


def test_all_leaves_the_builtin_device_out(empty_dir):
    # a fleet run with -d all must not benchmark the controller as well
    with pytest.raises(DeviceNotFound):
        select_devices(["all"])


def test_devices_list_marks_the_builtin_device(empty_dir, capsys):
    assert main(["devices", "list"]) == 0
    out = capsys.readouterr().out
    assert "| local | local |" in out and "(built in: this machine)" in out


def test_a_local_profile_in_the_folder_still_wins(empty_dir, capsys):
    (empty_dir / "devices").mkdir()
    (empty_dir / "devices" / "local.yaml").write_text(
        "name: local\ntransport: local\nfacts:\n  ram_gb: 3\n  cores: 3\n")
    assert not is_builtin(find_device("local"))

    (device,) = plan_json(capsys)["devices"]
    assert device["ram_bytes"] == {"value": 3 * GIB, "source": "profile devices/local.yaml"}
    assert device["cores"]["value"] == 3
    # what the profile leaves out is still probed, not defaulted
    assert device["cpu_arch"] == {"value": platform.machine(), "source": LIVE_PROBE}

    assert main(["devices", "list"]) == 0
    out = capsys.readouterr().out
    assert "devices/local.yaml" in out and "built in" not in out


def test_local_facts_come_from_psutil_and_platform(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi: no GPU, not a guess
    assert local.local_facts() == {
        "arch": platform.machine(), "ram_bytes": psutil.virtual_memory().total,
        "cores": psutil.cpu_count(logical=False) or psutil.cpu_count(), "vram_bytes": None}

    class Memory:
        total = 6 * GIB

    monkeypatch.setattr(local.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(local.psutil, "virtual_memory", lambda: Memory())
    monkeypatch.setattr(local.psutil, "cpu_count", lambda logical=True: 12 if logical else None)
    # a VM hiding its topology still has cores; an OS that names no machine gets no guess
    assert local.local_facts() == {"arch": "AMD64", "ram_bytes": 6 * GIB, "cores": 12, "vram_bytes": None}
    monkeypatch.setattr(local.platform, "machine", lambda: "")
    assert local.local_facts()["arch"] is None


def test_a_live_probe_beats_a_stored_one_and_the_profile_beats_both():
    stored = Calibration("local", probe={"arch": "aarch64", "memory": {"total_bytes": 4 * GIB},
                                         "cpu": {"physical_cores": 4}}, probe_run="old")
    machine = {"arch": "x86_64", "ram_bytes": 24 * GIB, "cores": 8}
    budget = device_budget(builtin_local(), stored, machine)
    assert (budget.ram.value, budget.cpu_arch.value, budget.cores.value) == (24 * GIB, "x86_64", 8)
    assert budget.ram.source == budget.cpu_arch.source == LIVE_PROBE

    assert device_budget(builtin_local(), stored).ram.source == "probe in results/old"


def test_a_local_nvidia_gpu_gives_its_memory(monkeypatch, tmp_path):
    """The driver's memory.total (an H200's, replayed by the recorded nvidia-smi), for offload planning."""
    import os
    import shutil
    import sys
    fake = Path(__file__).parent / "fixtures" / "telemetry" / "nvidia_smi"
    bin_dir = tmp_path / "bin"
    shutil.copytree(fake, bin_dir)
    (bin_dir / "nvidia-smi").chmod(0o755)
    python = Path(sys.executable).parent
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{python}")
    assert local.local_facts()["vram_bytes"] == 143771 << 20
