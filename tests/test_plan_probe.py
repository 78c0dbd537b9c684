"""`plan -d DEVICE` for an SSH device whose profile gives no `facts:` uses what `devices check` probed there
last (kept on the controller, with its date), not a guess: through the CLI, against a real sshd."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_ssh import device_yaml


def edgebench(tmp_path, *args):
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "known_hosts"),
           "EDGEBENCH_STATE": str(tmp_path / "state")}
    return subprocess.run([sys.executable, "-m", "edgebench", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=300)


def plan(tmp_path) -> dict:
    done = edgebench(tmp_path, "plan", "--like", "tiny-llama", "--quant", "Q8_0", "-d", "box", "--json")
    assert done.returncode == 0, done.stderr
    (device,) = json.loads(done.stdout)["devices"]
    return device


def test_plan_uses_the_facts_devices_check_probed_with_their_date(sshd, tmp_path):
    (tmp_path / "devices").mkdir()
    (tmp_path / "devices" / "box.yaml").write_text(device_yaml(sshd))  # no facts: at all
    trusted = edgebench(tmp_path, "devices", "trust", "box", "--fingerprint", sshd.host_key_fingerprint)
    assert trusted.returncode == 0, trusted.stderr
    before = plan(tmp_path)
    assert before["cpu_arch"]["source"].startswith("default") and before["ram_bytes"]["value"] is None

    check = edgebench(tmp_path, "devices", "check", "box", "--no-self-test", "--json")
    assert check.returncode == 0, check.stderr
    probed = json.loads(check.stdout)["facts"]
    after = plan(tmp_path)
    assert after["cpu_arch"]["value"] == probed["arch"] == os.uname().machine
    assert after["ram_bytes"]["value"] == probed["memory"]["total_bytes"] > 0
    date = after["cpu_arch"]["source"].removeprefix("devices check of ")
    assert len(date) == 10 and date[:2] == "20", after["cpu_arch"]
    text = edgebench(tmp_path, "plan", "--like", "tiny-llama", "--quant", "Q8_0", "-d", "box")
    assert f"CPU {probed['arch']} (devices check of {date})" in text.stdout
    assert f"(CPU {probed['arch']}):" in text.stdout


def test_the_newer_of_a_kept_probe_and_a_run_s_probe_wins(tmp_path, monkeypatch):
    """The kept probe and the run's: whichever was taken last describes the device."""
    from edgebench.config.device import parse_device
    from edgebench.facts.stored import recall, remember
    from edgebench.plan.calibrate import Calibration
    from edgebench.plan.fit import device_budget

    monkeypatch.setenv("EDGEBENCH_STATE", str(tmp_path / "state"))
    device = parse_device("name: box\ntransport: ssh\nhost: 192.0.2.1\n", file="box.yaml")
    remember("box", {"arch": "x86_64", "memory": {"total_bytes": 8 << 30}}, "2026-12-07T05:00:00+00:00")
    in_run = Calibration("box", probe={"arch": "riscv64", "memory": {"total_bytes": 2 << 30}}, probe_run="r1",
                         probe_date="2026-12-06T09:00:00+00:00")
    budget = device_budget(device, in_run, None, recall("box"))
    assert (budget.cpu_arch.value, budget.cpu_arch.source) == ("x86_64", "devices check of 2026-12-07")
    newer = Calibration("box", probe=in_run.probe, probe_run="r2", probe_date="2026-12-08T09:00:00+00:00")
    budget = device_budget(device, newer, None, recall("box"))
    assert (budget.cpu_arch.value, budget.cpu_arch.source) == ("riscv64", "probe in results/r2, 2026-12-08")
    assert budget.ram.value == 2 << 30
    # a kept file that is not a probe is no probe: the plan goes on without it
    (tmp_path / "state" / "probes" / "box.json").write_text("{not json")
    assert recall("box") is None
