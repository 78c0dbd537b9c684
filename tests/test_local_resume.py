"""A run on the local device stopped by `kill -9` or Ctrl-C, then finished by `run --resume`, through
the real CLI in a subprocess. Cells use the `sleep` test engine (a known time, no CPU), so the
controller is what is tested; the model is any file (the sleep engine never reads it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from sshd_server import wait_for

from edgebench.cli import EXIT_ERROR, main
from edgebench.results.aggregate import run_rows
from edgebench.results.records import CellEnd, CellRunning, Sample
from edgebench.results.store import read_cell_records, read_samples  # skip the torn line a writer may be writing

TESTS = ("tg10", "tg200", "tg20")  # 0.1 s, 2 s and 0.2 s a repetition at 100 t/s


def sleep_profile(tmp_path: Path, tests=TESTS) -> Path:
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(4096))
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(model))}]\ntests: [{', '.join(tests)}]\nrepetitions: 2\n"
                       "warmup: 0\nengine: {name: sleep, simulate_ts: 100}\ntelemetry: {interval_s: 0.1}\n")
    return profile


def cli(*args, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def stop_during_the_long_cell(proc: subprocess.Popen, results: Path, how: int) -> Path:
    """Wait until the first cell is done and the long one is being measured, then send `how`."""
    def cells():
        found = list(results.glob("*/cells.jsonl"))
        return read_cell_records(found[0].parent) if found else []

    wait_for(lambda: any(isinstance(c, CellEnd) and c.is_done for c in cells()), what="the first cell to finish")
    wait_for(lambda: any(isinstance(c, CellRunning) and "/tg200/" in c.cell for c in cells()), what="the long cell")
    proc.send_signal(how)
    return next(results.iterdir())


def assert_resumed(run_dir: Path, samples_before: list[Sample], cwd: Path, env: dict | None = None) -> None:
    resumed = cli("run", "--resume", run_dir, cwd=cwd, env=env)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    assert f"results: {run_dir}" in out
    rows = {r["test"]: r for r in run_rows(run_dir)}
    assert [(rows[t]["status"], rows[t]["attempt"]) for t in TESTS] == [("done", 1), ("done", 2), ("done", 1)]
    after = read_samples(run_dir)
    assert after[:len(samples_before)] == samples_before  # nothing measured before the stop was rewritten
    assert sum(1 for s in after if "/tg10/" in s.cell) == 2  # the finished cell was not measured again
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_kill_9_then_resume_on_a_local_device_from_yaml(tmp_path):
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\n")
    results = tmp_path / "results"
    first = cli("run", sleep_profile(tmp_path), "-d", "box", "--devices-dir", devices, "-o", results, cwd=tmp_path)
    run_dir = stop_during_the_long_cell(first, results, signal.SIGKILL)
    first.communicate(timeout=60)

    # the killed cell says it never finished, not `running` or `started`
    show = cli("show", run_dir, cwd=tmp_path)
    out, _ = show.communicate(timeout=60)
    failed = [line for line in out.splitlines() if "tg200" in line]
    assert failed == ["- box / model / tg200: never finished: the controller was stopped (interrupted or killed) "
                      "while measuring it, unless the run is still going; `edgebench run --resume` measures it "
                      "again"], out

    assert_resumed(run_dir, read_samples(run_dir), cwd=tmp_path)


def test_ctrl_c_names_the_run_then_resume_on_the_built_in_local_device(tmp_path):
    # no devices/ anywhere: the built-in local device, whose workdir is under $HOME
    env = {"EDGEBENCH_DEVICES": str(tmp_path / "no-devices"), "HOME": str(tmp_path / "home")}
    results = tmp_path / "results"
    first = cli("run", sleep_profile(tmp_path), "-o", "results", cwd=tmp_path, env=env)
    run_dir = stop_during_the_long_cell(first, results, signal.SIGINT)
    out, err = first.communicate(timeout=60)
    assert first.returncode == 130, out + err
    relative = Path("results") / run_dir.name
    assert f"results: {relative}" in out
    assert f"`edgebench run --resume {relative}` finishes it" in out
    assert "| local | model |" in out and "| tg10 |" in out  # what was measured before the stop

    assert_resumed(run_dir, read_samples(run_dir), cwd=tmp_path, env=env)


def test_parallel_below_one_is_refused_in_one_sentence(tmp_path, capsys):
    profile = sleep_profile(tmp_path)
    assert main(["run", str(profile), "--parallel", "0", "-o", str(tmp_path / "results")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err.strip() == ("error: --parallel is how many devices are measured at once: give 1 or more, not 0")
    assert not (tmp_path / "results").exists()
