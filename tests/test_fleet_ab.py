"""`ab` across a fleet, on real sshd "devices": every device runs its own interleaved A/B at the same time,
gets its own verdict, and the command exits with one summary code. The `sleep` test engine takes a known
time per repetition, so the verdicts do not hang on this machine's noise."""

from __future__ import annotations

import json

import pytest
from test_fleet_faults import sleep_profile, trusted_device

from edgebench.cli import main
from edgebench.compare.gate import fleet_exit_code

pytestmark = pytest.mark.usefixtures("private_known_hosts")

QUIET = ("--max-cpu-wait", "100", "--max-steal", "100")  # this shared VM's load must not repeat rounds here


def fleet(tmp_path, tiny_qwen35, servers):
    devices = tmp_path / "devices"
    for name, server in zip(("one", "two"), servers):
        trusted_device(server, name, devices)
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg20",), ts=1000.0))
    return devices, profile


def ab(tmp_path, devices, profile, *args) -> tuple[int, dict]:
    code = main(["ab", str(profile), "-d", "one", "-d", "two", "--devices-dir", str(devices), "--parallel", "2",
                 "-o", str(tmp_path / "results"), "--json", str(tmp_path / "ab.json"), *QUIET, *args])
    return code, json.loads((tmp_path / "ab.json").read_text())


def test_each_device_runs_its_own_ab_in_parallel_and_gets_its_own_verdict(sshd_factory, tmp_path, tiny_qwen35,
                                                                         capsys):
    devices, profile = fleet(tmp_path, tiny_qwen35, sshd_factory(2))
    code, report = ab(tmp_path, devices, profile, "--b", "engine.simulate_ts=500")
    assert code == 1 and report["devices"] == {"one": 1, "two": 1}
    verdicts = {c["label"].split("/")[0]: c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"}
    assert verdicts == {"one": "regressed", "two": "regressed"}
    out = capsys.readouterr().out
    assert "device one: exit 1 (regressed)" in out and "device two: exit 1 (regressed)" in out
    # both devices measured at once: their cells' records interleave in the one run's cells.jsonl (one after
    # the other, the device would change once)
    (run_dir,) = (tmp_path / "results").iterdir()
    order = [json.loads(line)["cell"].split(":")[1].split("/")[0]
             for line in (run_dir / "cells.jsonl").read_text().splitlines()]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert switches > 3, order


def test_one_device_down_makes_the_summary_an_error_while_the_other_keeps_its_own_verdict(sshd_factory, tmp_path,
                                                                                        tiny_qwen35):
    servers = sshd_factory(2)
    devices, profile = fleet(tmp_path, tiny_qwen35, servers)
    servers[1].stop()  # device two is gone before the A/B starts
    code, report = ab(tmp_path, devices, profile)
    # identical variants: "same" (or inconclusive where this VM's load made the sleeps jitter), never regressed
    assert report["devices"]["two"] == 3 and report["devices"]["one"] in (0, 2) and code == 3
    assert [c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"] in (["same"], ["inconclusive"])
    assert report["base_unmeasured"] == ["two/tg20 (tiny-qwen35-Q8_0, tauto)"]


@pytest.mark.parametrize("codes, summary", [({"a": 0, "b": 0}, 0), ({"a": 2, "b": 0}, 2), ({"a": 2, "b": 1}, 1),
                                            ({"a": 3, "b": 2}, 3), ({"a": 3, "b": 1}, 1)])
def test_the_summary_code_of_a_fleet(codes, summary):
    assert fleet_exit_code(codes) == summary
