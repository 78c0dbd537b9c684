"""Performance CI for llama.cpp itself, with real builds: a local llama.cpp repository of ten commits
(tests/llama_commits.py: one makes every matrix multiplication slower, one does not compile), each commit
built for this machine in the persistent build tree (incrementally after the first), installed on a local
device, and measured there: `ab` between commits, `run` + `compare` of two commits, and `bisect`.

The builds stay in the cache root's build tree and engine cache (as the board's engine does), so a second
CI run on this machine builds nothing; a cold tree costs one full llama.cpp build (minutes).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from llama_commits import BROKEN_INDEX, DOCS_INDEX, SLOW_INDEX, abbreviates, make_repo

from edgebench.cli import main
from edgebench.results.aggregate import run_rows
from edgebench.sweep.bisect import build_bound

QUIET = ("--max-cpu-wait", "100", "--max-steal", "100")  # this shared VM's load must not repeat rounds here


@pytest.fixture(scope="module")
def llama_repo(tmp_path_factory):
    from edgebench.toolchain.llama_cpp_source import vendored_llama_cpp

    root = tmp_path_factory.mktemp("perfci")
    repo = root / "llama.cpp"
    return repo, make_repo(vendored_llama_cpp(), repo)


@pytest.fixture(scope="module")
def perf_setup(llama_repo, tmp_path_factory, tiny_llama):
    repo, commits = llama_repo
    root = tmp_path_factory.mktemp("perfci-work")
    devices = root / "devices"
    devices.mkdir()
    (devices / "perfbox.yaml").write_text(f"name: perfbox\ntransport: local\nworkdir: {root / 'device'}\n")
    profile = root / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(tiny_llama))}]\ntests: [tg16]\nwarmup: 1\n"
                       f"engine: {{name: llama-bench, source: {json.dumps(str(repo))}, threads: 1}}\n"
                       "telemetry: {enabled: false}\nthresholds: {tg: 10%}\n")
    return root, devices, profile, commits


def bisect(setup, *args) -> tuple[int, dict]:
    root, devices, profile, commits = setup
    out = root / f"bisect-{len(list(root.glob('bisect-*.json')))}.json"
    code = main(["bisect", str(profile), "-d", "perfbox", "--devices-dir", str(devices), "--good", commits[0],
                 "--bad", "master", "-o", str(root / "results"), "--json", str(out), "--max-rounds", "11", *QUIET,
                 *args])
    return code, json.loads(out.read_text()) if out.exists() else {}


# a cold build tree (a machine where `.ci/run`, or `python tests/llama_commits.py build`, has not built the
# series yet) is built here: one full llama.cpp build, longer than a test's usual limit
@pytest.mark.timeout(3600)
def test_bisect_names_the_slow_commit_skips_the_broken_one_and_stays_within_the_build_bound(perf_setup, capsys):
    code, outcome = bisect(perf_setup)
    out = capsys.readouterr().out
    commits = perf_setup[3]
    assert code == 0, out
    assert outcome["confirmed"]["verdict"] == "regressed"
    assert outcome["first_bad"]["commit"] == commits[SLOW_INDEX], out
    assert outcome["first_bad"]["subject"] == "ggml-cpu: extra work in every matrix multiplication"
    assert outcome["first_bad"]["date"].startswith("2026-01-08")
    assert [c["commit"] for c in outcome["unbuildable"]] == [commits[BROKEN_INDEX]]
    assert [c["commit"] for c in outcome["no_build_input"]] == [commits[DOCS_INDEX]]
    # N: the commits after good up to bad; builds of the ends and midpoints, compiled now or (a later CI run
    # on this machine) from the cache, the broken one included
    assert outcome["builds"] + outcome["cached_builds"] <= build_bound(len(commits) - 1), outcome
    effect = outcome["effect"]
    assert effect["verdict"] == "regressed" and effect["ci_high"] < 0.9
    assert f"first bad commit: {commits[SLOW_INDEX][:12]} ggml-cpu: extra work" in out
    assert "skipped (does not build): " + commits[BROKEN_INDEX][:8] in out
    assert f"effect: tg16 ts ×{effect['ratio']:.3f} [95% CI " in out and f"against good {commits[0][:8]}" in out
    assert re.search(r"builds: \d+ compiled, \d+ from the cache; rounds: \d+ in 4 measurements \(0 reused\)", out)
    assert "left out (no build input changed): " + commits[DOCS_INDEX][:8] in out


def test_a_second_bisect_over_the_same_range_builds_installs_and_measures_nothing(perf_setup, capsys):
    # the device's engines moved away: a bisect that installed anything would put them back
    engines = perf_setup[0] / "device" / "engines"
    engines.rename(engines.with_name("engines-away"))
    try:
        code, outcome = bisect(perf_setup)
        assert not engines.exists()
    finally:
        shutil.rmtree(engines, ignore_errors=True)
        engines.with_name("engines-away").rename(engines)
    assert code == 0 and outcome["first_bad"]["commit"] == perf_setup[3][SLOW_INDEX]
    assert outcome["builds"] == 0 and outcome["rounds"] == 0
    assert all(step["reused"] for step in outcome["steps"])
    assert "0 compiled" in capsys.readouterr().out


def test_ab_between_the_ends_regresses_and_names_both_commits(perf_setup):
    root, devices, profile, commits = perf_setup
    good, bad = commits[0], commits[-1]
    code = main(["ab", str(profile), "-d", "perfbox", "--devices-dir", str(devices), "--a", f"engine.ref={good}",
                 "--b", "engine.ref=master", "--rounds", "7", "--max-rounds", "9", "-o", str(root / "ab"),
                 "--json", str(root / "ab.json"), "--markdown", str(root / "ab.md"), "--junit",
                 str(root / "ab.xml"), *QUIET])
    report = json.loads((root / "ab.json").read_text())
    assert code == 1 and [c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"] == ["regressed"]
    assert report["base_commit"] == good[:8] and report["candidate_commit"] == bad[:8]
    assert report["candidate"] == f"B master ({bad[:8]})"
    markdown = (root / "ab.md").read_text()
    assert f"`A {good[:8]}` → `B master ({bad[:8]})`" in markdown
    assert f"| base {good[:8]} | candidate {bad[:8]} |" in markdown
    properties = {p.get("name"): p.get("value") for p in ET.parse(root / "ab.xml").getroot().iter("property")}
    assert properties == {"base_commit": good[:8], "candidate_commit": bad[:8]}
    # the rows record the commit llama-bench was built from, as llama-bench does
    (run,) = (root / "ab").iterdir()
    rows = run_rows(run)
    assert {r["variant"] for r in rows} == {"A", "B"}
    # llama-bench's short hash is git's --short: 7 digits or more, as the repository's object count makes it
    assert all(abbreviates(r["build_commit"], good if r["variant"] == "A" else bad) for r in rows), rows
    assert {r["build_number"] for r in rows} == {1, len(commits)}


def test_ab_between_two_commits_before_the_slow_one_does_not_regress(perf_setup):
    root, devices, profile, commits = perf_setup
    code = main(["ab", str(profile), "-d", "perfbox", "--devices-dir", str(devices), "--a", f"engine.ref={commits[0]}",
                 "--b", f"engine.ref={commits[SLOW_INDEX - 1]}", "--rounds", "7", "--max-rounds", "9",
                 "-o", str(root / "ab-before"), "--json", str(root / "ab-before.json"), *QUIET])
    report = json.loads((root / "ab-before.json").read_text())
    assert code in (0, 2) and all(c["verdict"] != "regressed" for c in report["comparisons"]), report


def test_compare_reads_llama_bench_outputs_and_edgebench_runs_of_two_commits_alike(perf_setup, tiny_llama,
                                                                                   capsys):
    root, devices, profile, commits = perf_setup
    good, bad = commits[0], commits[-1]
    outputs = []
    for commit in (good, bad):
        # the build the device got, run as a user runs llama-bench
        installed = root / "device" / "engines" / f"commit-{commit}"
        assert abbreviates(json.loads((installed / "build.json").read_text())["build_commit"], commit)
        done = subprocess.run([str(installed / "bin" / "llama-bench"), "-m", str(tiny_llama), "-p", "0", "-n", "16",
                               "-r", "5", "-t", "1", "-o", "json"], capture_output=True, text=True, check=True)
        outputs.append(root / f"bench-{commit[:8]}.json")
        outputs[-1].write_text(done.stdout)
    code = main(["compare", *map(str, outputs), "--json", str(root / "cmp.json")])
    report = json.loads((root / "cmp.json").read_text())
    assert code == 1 and abbreviates(report["base_commit"], good) and abbreviates(report["candidate_commit"], bad)
    assert f"candidate {report['candidate_commit']}" in capsys.readouterr().out
    runs = []
    for name, commit in (("good", good), ("bad", bad)):
        variant = root / f"p-{name}.yaml"
        variant.write_text(profile.read_text().replace("warmup: 1", "warmup: 1\nrepetitions: 5")
                           .replace("threads: 1}", f"threads: 1, ref: {commit}}}"))
        results = root / f"run-{name}"
        assert main(["run", str(variant), "-d", "perfbox", "--devices-dir", str(devices), "-o", str(results)]) == 0
        (run,) = results.iterdir()
        runs.append(run)
    code = main(["compare", *map(str, runs), "--json", str(root / "cmp-runs.json")])
    report = json.loads((root / "cmp-runs.json").read_text())
    assert code == 1 and abbreviates(report["base_commit"], good) and abbreviates(report["candidate_commit"], bad)


def test_ends_that_are_not_worse_stop_the_bisect_with_exit_3(perf_setup, capsys):
    commits = perf_setup[3]
    code, outcome = bisect(perf_setup, "--bad", commits[SLOW_INDEX - 1])
    assert code == 3 and outcome["first_bad"] is None and outcome["confirmed"]["verdict"] != "regressed"
    assert "is not worse than good" in capsys.readouterr().out


def test_a_ref_without_a_source_and_an_unknown_ref_are_one_sentence(perf_setup, tmp_path, capsys):
    root, devices, profile, commits = perf_setup
    no_source = tmp_path / "no-source.yaml"
    no_source.write_text("models: ['synthetic:tiny-llama']\ntests: [tg16]\nengine: {name: llama-bench, ref: b1}\n")
    assert main(["ab", str(no_source), "-d", "perfbox", "--devices-dir", str(devices), "-o", str(tmp_path)]) == 3
    assert "engine.ref b1 needs engine.source" in capsys.readouterr().err
    assert main(["ab", str(profile), "-d", "perfbox", "--devices-dir", str(devices), "--b", "engine.ref=nope",
                 "-o", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "engine.ref nope: no such commit, tag or branch" in err and "Traceback" not in err
