"""Fleet runs that go wrong, on real sshd "devices": a device that dies, a connection that drops,
cells that crash or hang, a controller killed with -9 and resumed, two controllers and one device.

Cells use the `sleep` test engine (each repetition takes a known time and no CPU), so these
tests exercise the controller, not llama.cpp.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sshd_server import cmdline, wait_for

from edgebench.config import parse_device, parse_profile
from edgebench.results.aggregate import run_rows
from edgebench.sweep.device_worker import Observer
from edgebench.sweep.execute import resume_run, run_cells
from edgebench.transport.trust import presented_key, record_presented

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("private_known_hosts")


def ssh_device_yaml(server, name: str, python: str = sys.executable) -> str:
    return (f"name: {name}\ntransport: ssh\nhost: {server.host}\nport: {server.port}\nuser: {server.user}\n"
            f"identity: {server.client_key}\nworkdir: {json.dumps(str(server.device_dir))}\npython: {python}\n")


def trusted_device(server, name: str, directory: Path | None = None, python: str = sys.executable):
    text = ssh_device_yaml(server, name, python)
    device = parse_device(text, file=f"{name}.yaml")
    record_presented(presented_key(device), replace=False)
    if directory is not None:
        directory.mkdir(exist_ok=True)
        (directory / f"{name}.yaml").write_text(text)
    return device


def sleep_profile(model: Path, tests=("pp40", "tg40"), ts: float = 100.0, **extra) -> str:
    """Each repetition of a test takes (n_prompt + n_gen) / ts seconds."""
    lines = [f"models: [{json.dumps(str(model))}]", f"tests: [{', '.join(tests)}]", "repetitions: 2",
             "warmup: 0", f"engine: {{name: sleep, simulate_ts: {ts}}}", "telemetry: {interval_s: 0.1}",
             "retry_backoff_s: 0.2"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fake_python(tmp_path: Path, name: str, when_run: str) -> str:
    """An interpreter that does `when_run` instead of measuring a cell and is the real one otherwise."""
    script = tmp_path / f"python-{name}"
    script.write_text(f'#!/bin/sh\ncase "$2" in run) {when_run};; esac\nexec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return str(script)


class Hooks(Observer):
    def __init__(self, on_finished=None):
        self.on_finished = on_finished
        self.states: list[tuple[str, str]] = []

    def device_state(self, device, state):
        self.states.append((device, state))

    def cell_finished(self, cell, error):
        if self.on_finished:
            self.on_finished(cell, error)


def by_device(rows):
    found = {}
    for row in rows:
        found.setdefault(row["device"], []).append(row)
    return found


def test_a_device_that_dies_mid_run_fails_its_cells_and_the_others_finish(sshd_factory, tmp_path, tiny_qwen35):
    doomed, healthy = sshd_factory(2)
    devices = [trusted_device(doomed, "doomed"), trusted_device(healthy, "healthy")]
    profile = parse_profile(sleep_profile(tiny_qwen35, tests=("tg20", "tg30", "tg40"), retries=1),
                            file=str(tmp_path / "p.yaml"))

    def kill_after_first(cell, error):
        if cell.device.name == "doomed" and error is None and doomed.running:
            doomed.stop()  # the device is gone: no sshd, nothing listening

    outcome = run_cells(profile, devices, tmp_path / "results", observer=Hooks(kill_after_first), parallel=2)
    rows = by_device(outcome.rows)
    assert [r["status"] for r in rows["healthy"]] == ["done"] * 3
    assert [r["status"] for r in rows["doomed"]] == ["done", "failed", "failed"]
    assert outcome.status == "failed" and len(outcome.failures) == 2
    assert all("doomed/" in cell for cell, _ in outcome.failures)
    assert "cannot reach device doomed" in rows["doomed"][2]["error"]


def test_a_dropped_connection_is_retried_as_a_new_attempt(sshd, tmp_path, tiny_qwen35):
    device = trusted_device(sshd, "flaky")
    profile = parse_profile(sleep_profile(tiny_qwen35, tests=("tg300",)), file=str(tmp_path / "p.yaml"))
    dropped = []

    class DropOnce(Hooks):
        def sample(self, cell, sample):
            if not dropped:
                dropped.append(sshd.kill_connections())  # the network blips; sshd keeps listening

    outcome = run_cells(profile, [device], tmp_path / "results", observer=DropOnce())
    assert dropped and outcome.status == "complete" and not outcome.failures
    (row,) = outcome.rows
    assert row["status"] == "done" and row["attempt"] == 2 and row["n_samples"] == 2
    cells = read_jsonl(outcome.store.path / "cells.jsonl")
    first = [c for c in cells if c.get("attempt") == 1]
    assert first[-1]["state"] == "failed" and first[-1]["error"]["transient"] is True
    # the sample measured before the drop is kept, under attempt 1
    samples = read_jsonl(outcome.store.path / "samples.jsonl")
    assert [s["attempt"] for s in samples] == [1, 2, 2]


def test_crashing_and_hanging_cells_fail_with_their_reason_and_the_sweep_goes_on(sshd_factory, tmp_path,
                                                                                 tiny_qwen35):
    crashy, hangy, good = sshd_factory(3)
    devices = [trusted_device(crashy, "crashy", python=fake_python(tmp_path, "crash",
                                                                   "echo 'engine crashed' >&2; kill -SEGV $$")),
               # like the real runner, it says hello (with its pid) before it hangs
               trusted_device(hangy, "hangy", python=fake_python(
                   tmp_path, "hang", 'echo \'{"event":"hello","protocol":2,"pid":\'$$\'}\'; exec sleep 300')),
               trusted_device(good, "good")]
    profile = parse_profile(sleep_profile(tiny_qwen35, tests=("tg20", "tg30"), timeout_s=3),
                            file=str(tmp_path / "p.yaml"))
    outcome = run_cells(profile, devices, tmp_path / "results", parallel=3)
    rows = by_device(outcome.rows)
    assert [r["status"] for r in rows["good"]] == ["done", "done"]
    assert [r["status"] for r in rows["crashy"]] == ["failed", "failed"]
    assert [r["status"] for r in rows["hangy"]] == ["failed", "failed"]
    failed = {c["cell"]: c for c in read_jsonl(outcome.store.path / "cells.jsonl") if c["state"] == "failed"}
    crash = failed[next(c for c in failed if c.startswith("crashy/"))]["error"]
    assert crash["signal"] == signal.SIGSEGV and "engine crashed" in crash["stderr_tail"]
    assert all(failed[c]["error"]["kind"] == "timeout" for c in failed if c.startswith("hangy/"))
    assert not [cmdline(pid) for pid in hangy.children(include_sshd=False)]  # the hung runners were killed
    assert outcome.status == "failed" and len(outcome.failures) == 4


def _cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgebench", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _cells_in(results: Path, state: str):
    def check():
        files = list(results.glob("*/cells.jsonl"))
        return files and [c for c in read_jsonl(files[0]) if c["state"] == state]
    return check


def test_kill_9_of_the_controller_then_resume_finishes_only_what_is_missing(sshd, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    trusted_device(sshd, "pi", devices)
    profile = tmp_path / "p.yaml"
    profile.write_text(sleep_profile(tiny_qwen35, tests=("tg10", "tg400", "tg20")))
    results = tmp_path / "results"
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "edgebench_known_hosts")}
    first = _cli("run", profile, "-d", "pi", "--devices-dir", devices, "-o", results, env=env)
    wait_for(_cells_in(results, "done"), what="the first cell to finish")
    wait_for(lambda: any("/tg400/" in c["cell"] for c in _cells_in(results, "running")()), what="the long cell")
    first.kill()  # SIGKILL: no handler runs, no record is closed
    first.wait()
    run_dir = next(results.iterdir())
    before = read_jsonl(run_dir / "samples.jsonl")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    resumed = _cli("run", "--resume", run_dir, env=env)
    out, err = resumed.communicate(timeout=120)  # the dead controller's device lock went with its connection
    assert resumed.returncode == 0, out + err
    rows = {r["test"]: r for r in run_rows(run_dir)}
    assert [rows[t]["status"] for t in ("tg10", "tg400", "tg20")] == ["done"] * 3
    assert (rows["tg10"]["attempt"], rows["tg400"]["attempt"], rows["tg20"]["attempt"]) == (1, 2, 1)
    after = read_jsonl(run_dir / "samples.jsonl")
    assert after[:len(before)] == before  # nothing measured before the kill was lost or rewritten
    assert sum(1 for s in after if "/tg10/" in s["cell"]) == 2  # the finished cell was not run again
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and len(meta["resumed"]) == 1

    again = _cli("run", "--resume", run_dir, env=env)
    out, _ = again.communicate(timeout=60)
    assert again.returncode == 0 and "nothing to resume" in out


def test_two_controllers_on_one_device_take_turns_or_fail_with_no_wait(sshd, tmp_path, tiny_qwen35):
    devices = tmp_path / "devices"
    trusted_device(sshd, "shared", devices)
    long, short = tmp_path / "long.yaml", tmp_path / "short.yaml"
    long.write_text(sleep_profile(tiny_qwen35, tests=("tg300",)))
    short.write_text(sleep_profile(tiny_qwen35, tests=("tg10",)))
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(tmp_path / "edgebench_known_hosts")}
    holder = _cli("run", long, "-d", "shared", "--devices-dir", devices, "-o", tmp_path / "a", env=env)
    wait_for(_cells_in(tmp_path / "a", "running"), what="the first controller to measure")

    impatient = _cli("run", short, "-d", "shared", "--devices-dir", devices, "-o", tmp_path / "b", "--no-wait",
                     env=env)
    out, err = impatient.communicate(timeout=60)
    assert impatient.returncode == 1, out + err
    assert "in use by controller" in out and f"pid {holder.pid}" in out

    patient = _cli("run", short, "-d", "shared", "--devices-dir", devices, "-o", tmp_path / "c", env=env)
    holder_out, _ = holder.communicate(timeout=120)
    assert holder.returncode == 0, holder_out
    assert patient.poll() is None or patient.returncode == 0
    out, err = patient.communicate(timeout=60)
    assert patient.returncode == 0, out + err
    first = read_jsonl(next((tmp_path / "a").glob("*/cells.jsonl")))
    second = read_jsonl(next((tmp_path / "c").glob("*/cells.jsonl")))
    assert first[-1]["state"] == "done" and second[-1]["state"] == "done"
    # the second controller started measuring only after the first had finished
    assert second[0]["started"] >= first[-1]["ended"]


def test_resume_after_a_failed_cell_retries_only_that_cell(sshd, tmp_path, tiny_qwen35):
    device = trusted_device(sshd, "pi")
    crash_once = tmp_path / "crash-once"
    python = fake_python(tmp_path, "once", f'if [ ! -e {crash_once} ]; then touch {crash_once}; kill -KILL $$; fi')
    device = parse_device(ssh_device_yaml(sshd, "pi", python), file="pi.yaml")
    profile = parse_profile(sleep_profile(tiny_qwen35, tests=("tg10", "tg20")), file=str(tmp_path / "p.yaml"))
    outcome = run_cells(profile, [device], tmp_path / "results")
    assert [r["status"] for r in outcome.rows] == ["failed", "done"]
    assert "signal 9" in outcome.rows[0]["error"] and "out-of-memory killer" in outcome.rows[0]["error"]
    resumed = resume_run(outcome.store.path)
    assert not resumed.failures and resumed.status == "complete"
    assert [(r["status"], r["attempt"]) for r in resumed.rows] == [("done", 2), ("done", 1)]
