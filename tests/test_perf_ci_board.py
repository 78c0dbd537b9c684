"""Performance CI on the emulated Arm board (tests/arm_board.py): the commit series of tests/llama_commits.py
cross-built for the board's CPU (one aarch64 build tree, incrementally per commit), installed on the board over
SSH, and measured there: `ab` between commits and `bisect`, as tests/test_perf_ci.py does on this machine.

The board runs under emulation, so only the gate's verdicts are checked, never absolute speed. The slow commit
adds scalar work to every matrix multiplication, which emulation slows at least as much as the SIMD kernels.
`.ci/run` cross-builds the series before the tests (`python tests/llama_commits.py build --board`): a cold tree
is one full llama.cpp cross-build, longer than a test may take.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from llama_commits import BROKEN_INDEX, DOCS_INDEX, SLOW_INDEX, abbreviates, make_repo

from edgebench.results.aggregate import run_rows
from edgebench.sweep.bisect import build_bound

pytestmark = [pytest.mark.board]

BOARD_TIMEOUT_S = 2400
# emulation's spread must not repeat rounds; 2 threads, as many as this host has cores (tests/test_board.py)
QUIET = ("--max-cpu-wait", "100", "--max-steal", "100")


def edgebench(*args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=BOARD_TIMEOUT_S, env={**os.environ, **env})


@pytest.fixture(scope="module")
def board_perf(arm_board_session, tmp_path_factory):
    """A work directory with devices/board.yaml trusted, the series' repository, and a profile naming it."""
    from edgebench.toolchain.llama_cpp_source import vendored_llama_cpp

    work = tmp_path_factory.mktemp("board-perfci")
    repo = work / "llama.cpp"
    commits = make_repo(vendored_llama_cpp(), repo)
    (work / "devices").mkdir()
    (work / "devices" / "board.yaml").write_text(arm_board_session.device_yaml("board"))
    env = {"EDGEBENCH_KNOWN_HOSTS": str(work / "known_hosts"), "EDGEBENCH_STATE": str(work / "state")}
    trusted = edgebench("devices", "trust", "board", "--fingerprint", arm_board_session.fingerprint, cwd=work, env=env)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    profile = work / "p.yaml"
    profile.write_text("models: ['synthetic:tiny-llama@Q4_K_M']\ntests: [tg16]\nwarmup: 1\ntimeout_s: 900\n"
                       f"engine: {{name: llama-bench, source: {json.dumps(str(repo))}, threads: 2}}\n"
                       "telemetry: {enabled: false}\nthresholds: {tg: 10%}\n")
    return work, env, profile, commits


def bisect(board_perf, name: str) -> tuple[subprocess.CompletedProcess, dict]:
    work, env, profile, commits = board_perf
    out = work / f"{name}.json"
    done = edgebench("bisect", profile, "-d", "board", "--good", commits[0], "--bad", "master", "--rounds", "5",
                     "--max-rounds", "9", "-o", work / "bisect", "--json", out, *QUIET, cwd=work, env=env)
    return done, json.loads(out.read_text()) if out.exists() else {}


@pytest.mark.timeout(BOARD_TIMEOUT_S)
def test_ab_on_the_board_between_the_ends_regresses_and_names_both_commits(board_perf):
    work, env, profile, commits = board_perf
    good, bad = commits[0], commits[-1]
    ab = edgebench("ab", profile, "-d", "board", "--a", f"engine.ref={good}", "--b", "engine.ref=master",
                   "--rounds", "5", "--max-rounds", "7", "-o", work / "ab", "--json", work / "ab.json", *QUIET,
                   cwd=work, env=env)
    report = json.loads((work / "ab.json").read_text())
    assert ab.returncode == 1, ab.stdout + ab.stderr
    assert [c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"] == ["regressed"]
    assert report["base_commit"] == good[:8] and report["candidate"] == f"B master ({bad[:8]})"
    # both builds are the board's, from those commits (llama-bench's short hash: as long as git's --short makes it)
    (run,) = (work / "ab").iterdir()
    rows = run_rows(run)
    assert {r["variant"] for r in rows} == {"A", "B"}
    for row in rows:
        assert abbreviates(row["build_commit"], good if row["variant"] == "A" else bad), row["build_commit"]
        assert row["build_target"] == "aarch64-linux-gnu" and "NEON = 1" in row["system_info"]


@pytest.mark.timeout(BOARD_TIMEOUT_S)
def test_ab_on_the_board_between_two_commits_before_the_slow_one_does_not_regress(board_perf):
    work, env, profile, commits = board_perf
    ab = edgebench("ab", profile, "-d", "board", "--a", f"engine.ref={commits[0]}",
                   "--b", f"engine.ref={commits[SLOW_INDEX - 1]}", "--rounds", "5", "--max-rounds", "7",
                   "-o", work / "ab-before", "--json", work / "ab-before.json", *QUIET, cwd=work, env=env)
    report = json.loads((work / "ab-before.json").read_text())
    assert ab.returncode in (0, 2), ab.stdout + ab.stderr
    assert all(c["verdict"] != "regressed" for c in report["comparisons"]), ab.stdout


@pytest.mark.timeout(BOARD_TIMEOUT_S)
def test_bisect_on_the_board_names_the_slow_commit_and_a_second_one_builds_and_measures_nothing(board_perf):
    commits = board_perf[3]
    done, outcome = bisect(board_perf, "bisect")
    assert done.returncode == 0, done.stdout + done.stderr
    assert outcome["first_bad"]["commit"] == commits[SLOW_INDEX], done.stdout
    assert [c["commit"] for c in outcome["unbuildable"]] == [commits[BROKEN_INDEX]]
    assert [c["commit"] for c in outcome["no_build_input"]] == [commits[DOCS_INDEX]]
    assert outcome["builds"] + outcome["cached_builds"] <= build_bound(len(commits) - 1), outcome
    assert outcome["effect"]["verdict"] == "regressed"
    assert f"first bad commit: {commits[SLOW_INDEX][:12]} ggml-cpu: extra work" in done.stdout
    again, repeated = bisect(board_perf, "bisect-again")
    assert again.returncode == 0 and repeated["first_bad"]["commit"] == commits[SLOW_INDEX], again.stdout
    assert repeated["builds"] == 0 and repeated["rounds"] == 0 and all(s["reused"] for s in repeated["steps"])
