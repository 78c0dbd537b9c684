"""Golden runs: stored run directories of every kind (local, ssh, a fleet with failures, ab, two shards and
their merge, a resumed run, llama.cpp, two written by edgebench at commit 2aee22c) read back by this code
exactly as they did when they were made: the same rows, `show` exports and `compare` reports, byte for byte.
`show`, `report`, `merge` and `run --resume` work on a copy of each.

Any change to what a run directory reads back as fails here. When the change is intended, regenerate the
expected files on purpose (tests/golden/make_golden.py says how) and review their diff.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from golden.readback import (
    COMPARE_FORMATS,
    COMPARE_PAIRS,
    EXPECTED,
    GOLDEN,
    KINDS,
    RUNS,
    SHOW_FORMATS,
    ab_gate_text,
    compare_file,
    compare_texts,
    quiet_cli,
    rows_text,
    show_text,
)

# the runs whose every cell finished; the fleet's failed cells are what its resume measures again
FINISHED = tuple(kind for kind in KINDS if kind != "fleet")


@pytest.fixture
def golden(tmp_path) -> Path:
    """A copy of the golden tree: nothing a test runs may touch the stored runs."""
    return Path(shutil.copytree(GOLDEN, tmp_path / "golden"))


def run_dir(root: Path, kind: str) -> Path:
    return root / RUNS / kind


def expected(name: str) -> str:
    return (EXPECTED / name).read_text()


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def meta(directory: Path) -> dict:
    return json.loads((directory / "run.json").read_text())


def test_every_kind_of_run_is_stored_with_what_it_reads_back_as():
    assert sorted(p.name for p in (GOLDEN / RUNS).iterdir()) == sorted(KINDS)
    wanted = {f"{kind}.rows.json" for kind in KINDS} | {f"{kind}.show.{fmt}" for kind in KINDS for fmt in SHOW_FORMATS}
    wanted |= {str(compare_file(b, c, fmt).relative_to(EXPECTED)) for b, c in COMPARE_PAIRS for fmt in COMPARE_FORMATS}
    wanted.add("ab.gate.json")
    assert sorted(str(p.relative_to(EXPECTED)) for p in EXPECTED.rglob("*") if p.is_file()) == sorted(wanted)
    for kind in ("previous", "previous-llama"):  # written by that version: its records have no repack, no round
        records = [json.loads(line) for line in (GOLDEN / RUNS / kind / "cells.jsonl").read_text().splitlines()]
        assert not any("round" in r or "repack" in (r.get("engine_options") or {}) for r in records), kind
        assert "edgebench-2aee22c" in meta(GOLDEN / RUNS / kind)["command"][0], kind


@pytest.mark.parametrize("kind", KINDS)
def test_rows_read_back_unchanged(golden, kind):
    assert rows_text(run_dir(golden, kind)) == expected(f"{kind}.rows.json")


@pytest.mark.parametrize("fmt", SHOW_FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_show_exports_unchanged(golden, tmp_path, kind, fmt):
    assert show_text(run_dir(golden, kind), fmt, tmp_path) == expected(f"{kind}.show.{fmt}")


@pytest.mark.parametrize("base, cand", COMPARE_PAIRS, ids=[f"{b}-vs-{c}" for b, c in COMPARE_PAIRS])
def test_compare_verdicts_unchanged(golden, tmp_path, base, cand):
    code, reports = compare_texts(golden, base, cand, tmp_path)
    for fmt in COMPARE_FORMATS:
        assert reports[fmt] == compare_file(base, cand, fmt).read_text(), fmt
    assert code == json.loads(reports["json"])["exit_code"]


def test_the_ab_runs_gate_judged_again_from_its_records_is_unchanged(golden):
    assert ab_gate_text(run_dir(golden, "ab")) == expected("ab.gate.json")


@pytest.mark.parametrize("kind", KINDS)
def test_report_of_each_run(golden, tmp_path, kind):
    out = tmp_path / "report.html"
    code, printed = quiet_cli("report", run_dir(golden, kind), "-o", out)
    assert code == 0, printed
    assert meta(run_dir(golden, kind))["run_id"] in out.read_text()


def test_report_of_two_runs_carries_the_gates_verdicts(golden, tmp_path):
    out = tmp_path / "report.html"
    code, printed = quiet_cli("report", run_dir(golden, "previous"), run_dir(golden, "local"), "-o", out)
    assert code == 0, printed
    verdicts = {c["verdict"] for c in json.loads(compare_file("previous", "local", "json").read_text())["comparisons"]}
    assert verdicts and all(verdict in out.read_text() for verdict in verdicts)


def resume(root: Path, kind: str) -> subprocess.CompletedProcess:
    """`edgebench run --resume runs/KIND` in a subprocess, as a user types it."""
    env = {**os.environ, "EDGEBENCH_KNOWN_HOSTS": str(root / "known_hosts")}  # trusts nothing
    return subprocess.run([sys.executable, "-m", "edgebench", "run", "--resume", f"{RUNS}/{kind}"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", FINISHED)
def test_resume_of_a_finished_run_has_nothing_to_do(golden, kind):
    run = run_dir(golden, kind)
    before = snapshot(run)
    done = resume(golden, kind)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{RUNS}/{kind}: every cell has finished; nothing to resume" in done.stdout
    assert snapshot(run) == before


def test_resume_of_the_fleet_measures_its_failed_cells_again_and_keeps_the_rest(golden):
    run = run_dir(golden, "fleet")
    before = {row["device"] + "/" + row["test"]: row for row in json.loads(expected("fleet.rows.json"))}
    samples = (run / "samples.jsonl").read_bytes()
    done = resume(golden, "fleet")
    # the stored devices are gone (their sshd stopped) and so is the model file: the cells fail again
    assert done.returncode == 1, done.stdout + done.stderr
    after = {row["device"] + "/" + row["test"]: row for row in json.loads(rows_text(run))}
    assert after.keys() == before.keys()
    for cell, row in before.items():
        if row["status"] == "done":
            assert after[cell] == row, cell  # a finished cell is not measured again
        else:
            assert (after[cell]["status"], after[cell]["attempt"]) == ("failed", row["attempt"] + 1), cell
    assert (run / "samples.jsonl").read_bytes() == samples
    assert meta(run)["status"] == "failed" and len(meta(run)["resumed"]) == 1


def test_the_shards_merge_into_the_stored_merged_run(golden, tmp_path):
    merged = tmp_path / "merged"
    code, printed = quiet_cli("merge", run_dir(golden, "shard-1"), run_dir(golden, "shard-2"), "-o", merged)
    assert code == 0, printed
    assert rows_text(merged) == expected("merged.rows.json")
    stored = run_dir(golden, "merged")
    for name in ("devices.jsonl", "cells.jsonl", "samples.jsonl", "telemetry.jsonl"):
        assert (merged / name).read_bytes() == (stored / name).read_bytes(), name
    assert [m["shard"] for m in meta(merged)["merged_from"]] == ["1/2", "2/2"]


def test_local_and_ssh_runs_of_one_profile_merge_into_both_rows(golden, tmp_path):
    merged = tmp_path / "both"
    code, printed = quiet_cli("merge", run_dir(golden, "local"), run_dir(golden, "ssh"), "-o", merged)
    assert code == 0, printed
    both = json.loads(expected("local.rows.json")) + json.loads(expected("ssh.rows.json"))
    assert rows_text(merged) == json.dumps(both, indent=1) + "\n"


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_merged_with_itself_is_refused(golden, tmp_path, capsys, kind):
    run = run_dir(golden, kind)
    code, printed = quiet_cli("merge", run, run, "-o", tmp_path / "twice")
    assert code == 3, printed
    err = capsys.readouterr().err
    assert " is the same run as " in err and "twice" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "twice").exists()


def test_an_ab_run_is_not_merged_with_another(golden, tmp_path, capsys):
    ab, other = tmp_path / "ab", tmp_path / "ab-copy"
    shutil.copytree(run_dir(golden, "ab"), ab)
    shutil.copytree(run_dir(golden, "ab"), other)
    header = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**header, "run_id": "another"}))
    code, printed = quiet_cli("merge", ab, other, "-o", tmp_path / "both")
    assert code == 3, printed
    assert "is an ab run, one interleaved experiment" in capsys.readouterr().err
    assert not (tmp_path / "both").exists()
