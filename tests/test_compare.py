"""The regression gate: `compare` on runs and llama-bench files, baselines, reports, exit codes, and `ab`."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from edgebench.cli import EXIT_ERROR, main
from edgebench.results.header import PlannedCell
from edgebench.results.records import CellEnd, CellError, CellFacts, CellStart, Sample
from edgebench.results.store import RunStore


def noisy(center: float, n: int, seed: int, cv: float = 0.01) -> list[float]:
    rng = random.Random(seed)
    return [center * math.exp(rng.gauss(0, cv)) for _ in range(n)]


def fake_run(root: Path, cells: dict[str, list[float] | None], thresholds: dict | None = None,
             device: str = "pi5", model_sha: str = "ab" * 32, build: str | None = None,
             repack: bool = True) -> Path:
    """A finished run directory with the given t/s samples per test (None: the cell failed)."""
    store = RunStore.create(root, profile={"name": "gate", "thresholds": thresholds or {}}, devices={},
                            cells=[PlannedCell(f"{device}/m/{t}/t2") for t in cells])
    for test, values in cells.items():
        n_prompt, n_gen = (int(test[2:]), 0) if test.startswith("pp") else (0, int(test[2:]))
        cell = f"{device}/m/{test}/t2"
        store.append(CellStart(cell=cell, model_sha256=model_sha, facts=CellFacts(
            device=device, model="m", test=test, engine="llama.cpp", n_prompt=n_prompt, n_gen=n_gen, n_depth=0,
            n_threads=2, engine_options={"n_batch": 2048, "n_ubatch": 512, "repack": repack})))
        if values is None:
            store.append(CellEnd(cell=cell, outcome="failed",
                                 error=CellError(kind="crashed", message="runner died from signal 9")))
            continue
        for rep, ts in enumerate(values):
            store.append(Sample(cell=cell, rep=rep, ts=ts, t_ns=int((n_prompt + n_gen) / ts * 1e9),
                                n_tokens=n_prompt + n_gen, window={"peak_rss_kb": 500_000}))
        store.append(CellEnd.done(cell, 1, {"n_threads": 2, "system_info": build}, None, False))
    store.finish("complete", [])
    return store.path


def gate(*args) -> int:
    return main(["compare", *map(str, args)])


def test_a_clear_slowdown_regresses_and_the_reports_say_so(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1), "pp512": noisy(100, 7, 2)})
    cand = fake_run(tmp_path / "r", {"tg128": noisy(18, 7, 3), "pp512": noisy(100, 7, 4)})
    code = gate(base, cand, "--markdown", tmp_path / "gate.md", "--junit", tmp_path / "gate.xml",
                "--json", tmp_path / "gate.json")
    out = capsys.readouterr().out
    assert code == 1 and "regressed" in out and "exit 1" in out
    report = json.loads((tmp_path / "gate.json").read_text())
    verdicts = {(c["test"], c["metric"]): c["verdict"] for c in report["comparisons"]}
    assert verdicts == {("tg128", "ts"): "regressed", ("tg128", "peak_rss"): "same",
                        ("pp512", "ts"): "same", ("pp512", "peak_rss"): "same"}
    tg = next(c for c in report["comparisons"] if c["test"] == "tg128" and c["metric"] == "ts")["decision"]
    assert 0.85 < tg["ratio"] < 0.95 and tg["ci_low"] <= tg["ratio"] <= tg["ci_high"] and tg["p_value"] <= 0.01
    suite = ET.parse(tmp_path / "gate.xml").getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    failed = [case for case in suite if case.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [("pi5/m/tg128/t2", "ts")]
    markdown = (tmp_path / "gate.md").read_text()
    assert "❌ regressed" in markdown and "| pi5/m/tg128/t2 | ts (t/s) |" in markdown


def test_the_same_numbers_pass(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    cand = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 5)})
    assert gate(base, cand) == 0 and "exit 0" in capsys.readouterr().out


def test_too_few_repetitions_are_inconclusive_and_the_policy_decides_the_exit(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": [20.0, 20.1, 19.9]})
    cand = fake_run(tmp_path / "r", {"tg128": [15.0, 15.1, 14.9]})
    assert gate(base, cand) == 2
    assert "cannot reach" in capsys.readouterr().out  # n=3 per side: says so, does not guess
    assert gate(base, cand, "--inconclusive", "pass") == 0
    assert gate(base, cand, "--inconclusive", "fail") == 1


def test_thresholds_come_from_the_profile_and_the_cli_overrides_them(tmp_path):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    cand = fake_run(tmp_path / "r", {"tg128": noisy(19.2, 7, 3)}, thresholds={"tg": 0.10})  # -4%
    assert gate(base, cand, "--json", tmp_path / "a.json") == 0  # within the profile's 10%
    assert gate(base, cand, "--threshold", "tg=2%", "--json", tmp_path / "b.json") == 1
    thresholds = [c["threshold"] for c in json.loads((tmp_path / "b.json").read_text())["comparisons"]
                  if c["metric"] == "ts"]
    assert thresholds == [0.02]
    assert gate(base, cand, "--threshold", "tg=fast") == EXIT_ERROR


def test_an_unknown_threshold_key_on_the_command_line_is_an_error_naming_it(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    cand = fake_run(tmp_path / "r", {"tg128": noisy(19.2, 7, 3)})
    assert gate(base, cand, "--threshold", "tg=2%,tgg=3%") == EXIT_ERROR
    err = capsys.readouterr().err
    assert "--threshold tgg=3%: unknown threshold key 'tgg' (did you mean 'tg'?)" in err
    assert "ts, ttft, peak_rss, j_per_token" in err and "pp, tg, pp+tg, b" in err


@pytest.mark.parametrize("key, applies", [("tg128", True), ("tg", True), ("ts", True), ("pp", False),
                                          ("pp+tg", False), ("b", False), ("b8", False), ("ttft", False),
                                          ("peak_rss", False), ("j_per_token", False), ("tg128@d4096", False)])
def test_every_key_a_threshold_applies_to_is_accepted_on_the_command_line(tmp_path, key, applies):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    cand = fake_run(tmp_path / "r", {"tg128": noisy(19.2, 7, 3)})  # -4%
    code = gate(base, cand, "--threshold", f"{key}=2%", "--json", tmp_path / "g.json")
    assert code != EXIT_ERROR
    [ts] = [c["threshold"] for c in json.loads((tmp_path / "g.json").read_text())["comparisons"] if c["metric"] == "ts"]
    assert (ts == 0.02) == applies


MINIMAL_PROFILE = "models: [synthetic:tiny-qwen35]\ntests: [tg16]\n"


@pytest.mark.parametrize("text", ["3%", " 2.5 % ", ".5%", "150%", "0.03", 0.03])
def test_the_profile_and_the_command_line_read_a_limit_alike(text):
    from edgebench.compare.thresholds import parse_threshold_option
    from edgebench.config import parse_profile

    in_profile = parse_profile(f"{MINIMAL_PROFILE}thresholds: {{tg: {json.dumps(text)}}}\n")
    assert parse_threshold_option(f"tg={text}") == dict(in_profile.thresholds)


@pytest.mark.parametrize("text, reason", [("3", "a bare number is a fraction (0.03 means 3%); write '3%' for percent"),
                                          ("0%", "a threshold must be greater than 0"),
                                          ("fast", "expected a percentage such as '3%'")])
def test_the_profile_and_the_command_line_refuse_a_limit_alike(tmp_path, capsys, text, reason):
    from edgebench.config import parse_profile
    from edgebench.errors import ConfigError

    value = 3 if text == "3" else text  # YAML's number, the command line's text
    with pytest.raises(ConfigError, match="thresholds.tg: " + re.escape(reason)):
        parse_profile(f"{MINIMAL_PROFILE}thresholds: {{tg: {json.dumps(value)}}}\n")
    run = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    assert gate(run, run, "--threshold", f"tg={text}") == EXIT_ERROR
    assert f"--threshold tg={text}: {reason}" in capsys.readouterr().err


def test_unmatched_and_failed_cells_are_listed_not_dropped(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1), "pp512": noisy(100, 7, 2), "tg64": noisy(30, 7, 3)})
    cand = fake_run(tmp_path / "r", {"tg128": None, "pp512": noisy(100, 7, 4), "tg256": noisy(15, 7, 5)})
    assert gate(base, cand, "--json", tmp_path / "g.json") == 1  # the candidate crashed where the base measured
    report = json.loads((tmp_path / "g.json").read_text())
    assert {(c["test"], c["verdict"]) for c in report["comparisons"] if c["metric"] == "ts"} == {
        ("tg128", "failed"), ("pp512", "same")}
    assert report["only_base"] == ["pi5/m/tg64/t2"] and report["only_candidate"] == ["pi5/m/tg256/t2"]
    out = capsys.readouterr().out
    assert "only in base (not run by the candidate): pi5/m/tg64/t2" in out


def test_other_devices_or_models_do_not_match_and_nothing_compared_is_an_error(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    other_model = fake_run(tmp_path / "r", {"tg128": noisy(10, 7, 2)}, model_sha="cd" * 32)
    # a gate that compared nothing must not pass, whatever the inconclusive policy
    assert gate(base, other_model, "--json", tmp_path / "g.json", "--junit", tmp_path / "g.xml",
                "--inconclusive", "pass") == EXIT_ERROR
    report = json.loads((tmp_path / "g.json").read_text())
    assert report["comparisons"] == [] and report["only_base"] and report["only_candidate"]
    assert report["exit_code"] == EXIT_ERROR and "no cell of" in report["nothing_compared"]
    assert f"0 comparisons: nothing was compared: no cell of {other_model} matches a cell of {base}" \
        in capsys.readouterr().out
    suite = ET.parse(tmp_path / "g.xml").getroot()
    assert suite.get("errors") == "1" and suite.find("testcase/error") is not None  # CI does not read it as a pass


def test_two_runs_that_measured_nothing_are_an_error_not_a_pass(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": None, "pp512": None})
    cand = fake_run(tmp_path / "r", {"tg128": None, "pp512": None})
    assert gate(base, cand) == EXIT_ERROR
    assert (f"nothing was compared: the base ({base}) has no samples for any of the 2 cell(s) both sides ran: "
            f"it failed to measure them → exit 3") in capsys.readouterr().out


AVX2_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | OPENMP = 1 | REPACK = 1 |"
NATIVE_BUILD = "CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | OPENMP = 1 | REPACK = 1 |"


def test_runs_of_different_engine_builds_are_not_the_same_experiment(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1), "pp512": None}, build=AVX2_BUILD)
    same = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 2), "pp512": noisy(90, 7, 3)}, build=AVX2_BUILD)
    assert gate(base, same, "--json", tmp_path / "same.json") == 0
    # the base's failed pp512 cell never reported a build: it still meets its twin, by the device's build
    assert json.loads((tmp_path / "same.json").read_text())["only_base"] == []
    other = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 4), "pp512": noisy(90, 7, 5)}, build=NATIVE_BUILD)
    capsys.readouterr()
    gate(base, other, "--json", tmp_path / "other.json")
    report = json.loads((tmp_path / "other.json").read_text())
    assert report["comparisons"] == [] and sorted(report["only_base"]) == ["pi5/m/pp512/t2", "pi5/m/tg128/t2"]
    out = capsys.readouterr().out
    assert "not the same experiment: pi5/m/tg128/t2: system_info" in out and "AMX_INT8 = 1" in out


def test_runs_with_and_without_repack_are_not_the_same_experiment(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)}, build=AVX2_BUILD)
    cand = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 2)}, build=AVX2_BUILD, repack=False)
    gate(base, cand)
    assert "not the same experiment: pi5/m/tg128/t2: repack True vs False" in capsys.readouterr().out


def llama_bench_jsonl(path: Path, tg: list[float], build: str) -> Path:
    row = {"build_commit": build, "cpu_info": "Cortex-A76", "model_filename": "/m/q4.gguf", "model_type": "qwen35 4B",
           "model_size": 2_000_000_000, "n_batch": 2048, "n_ubatch": 512, "n_threads": 4, "type_k": "f16",
           "type_v": "f16", "n_gpu_layers": 0, "flash_attn": False, "n_prompt": 0, "n_gen": 128, "n_depth": 0,
           "samples_ts": tg, "avg_ts": sum(tg) / len(tg)}
    path.write_text(json.dumps(row) + "\n")
    return path


def test_llama_bench_outputs_are_gated_too(tmp_path):
    old = llama_bench_jsonl(tmp_path / "old.jsonl", noisy(12, 7, 1), "aaa")
    new = llama_bench_jsonl(tmp_path / "new.jsonl", noisy(10, 7, 2), "bbb")
    assert gate(old, new, "--json", tmp_path / "g.json") == 1
    (comparison,) = json.loads((tmp_path / "g.json").read_text())["comparisons"]
    assert comparison["verdict"] == "regressed" and comparison["label"] == "q4.gguf/tg128/t4"
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": 1}')
    assert gate(old, foreign) == EXIT_ERROR


def test_a_saved_baseline_is_a_copy_that_compare_can_use(tmp_path, capsys):
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    assert main(["baseline", "save", str(base), "--name", "main", "-o", str(tmp_path / "r")]) == 0
    assert main(["baseline", "save", str(base), "--name", "main", "-o", str(tmp_path / "r")]) == EXIT_ERROR
    assert main(["baseline", "save", str(base), "--name", "../evil", "-o", str(tmp_path / "r")]) == EXIT_ERROR
    saved = tmp_path / "r" / "baselines" / "main"
    assert (saved / "run.json").read_text() == (base / "run.json").read_text()
    cand = fake_run(tmp_path / "r", {"tg128": noisy(17, 7, 2)})
    assert gate("--baseline", "main", cand, "-o", tmp_path / "r") == 1
    assert gate("--baseline", "nope", cand, "-o", tmp_path / "r") == EXIT_ERROR
    capsys.readouterr()
    assert main(["baseline", "list", "-o", str(tmp_path / "r")]) == 0
    assert "main" in capsys.readouterr().out


def test_markdown_is_appended_to_the_github_step_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    base = fake_run(tmp_path / "r", {"tg128": noisy(20, 7, 1)})
    gate(base, base, "--markdown", summary)
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "### edgebench regression gate" in text


# -- ab: interleaved variants on one device ---------------------------------------------------------

def write_profile(path: Path, model: Path, body: str) -> Path:
    path.write_text(f"models: [{json.dumps(str(model))}]\n{body}")
    return path


def ab(tmp_path, profile, *args):
    return main(["ab", str(profile), "-o", str(tmp_path / "results"), "--json", str(tmp_path / "ab.json"), *args])


def test_ab_of_two_threads_against_one_interleaves_the_variants_and_records_their_threads(tmp_path, tiny_qwen35):
    # which of 2 threads and 1 is faster depends on what else the machine runs (on a loaded 2-core VM one
    # thread can win): the verdict on real large changes is tests/test_gate_verdicts.py's, by model size
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [pp512]\nwarmup: 1\nengine: {threads: 2}\n"
                            "telemetry: {enabled: false}\n")
    code = ab(tmp_path, profile, "--b", "engine.threads=1", "--rounds", "7", "--max-cpu-wait", "100",
              "--max-steal", "100")  # a disturbed round measured again would break the order asserted below
    report = json.loads((tmp_path / "ab.json").read_text())
    ts = next(c for c in report["comparisons"] if c["metric"] == "ts")
    assert code == {"regressed": 1, "inconclusive": 2}.get(ts["verdict"], 0) and ts["decision"]["rounds"] >= 7
    run_dir = next((tmp_path / "results").iterdir())
    cells = [json.loads(line) for line in (run_dir / "cells.jsonl").read_text().splitlines()]
    started = [c["cell"].split(":")[0] for c in cells if c["state"] == "started"]
    assert started[:4] == ["A1", "B1", "B2", "A2"]  # interleaved, alternating order
    assert {c["n_threads"] for c in cells if c["state"] == "started" and c["variant"] == "B"} == {1}


@pytest.mark.parametrize("b_speed, verdict, code", [(1000, "same", 0), (900, "regressed", 1)])
def test_ab_of_identical_variants_is_same_and_a_slower_one_regresses(tmp_path, tiny_qwen35, b_speed, verdict,
                                                                     code):
    # the sleep engine takes a known time, so the verdict does not hang on this VM's noise
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [tg50]\nwarmup: 0\n"
                            "engine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n"
                            "thresholds: {tg: 3%, peak_rss: 20%}\n")
    assert ab(tmp_path, profile, "--b", f"engine.simulate_ts={b_speed}", "--rounds", "7",
              "--threshold", "tg=4%") == code
    report = json.loads((tmp_path / "ab.json").read_text())
    assert [c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"] == [verdict]
    # what judged the run stays with it: the profile's thresholds under the command line's, and alpha
    (run_dir,) = (tmp_path / "results").iterdir()
    design = json.loads((run_dir / "run.json").read_text())["ab"]
    assert design["thresholds"] == {"peak_rss": 0.2, "tg": 0.04} and design["alpha"] == 0.01


@pytest.mark.parametrize("first, max_rounds, verdict", [(5, 6, "inconclusive"), (7, 15, "regressed")])
def test_ab_looks_every_two_rounds_and_stops_when_settled_or_at_the_budget(tmp_path, tiny_qwen35, first, max_rounds,
                                                                          verdict):
    # B at half the speed: every round says B is slower. Looks at 5 and 6 rounds can never reach 0.01 (the
    # smallest p of n rounds is 2**-n); at 7, 9, ..., 15 alpha is split over the 4 looks that can, 0.0025 each,
    # which 9 rounds reach (2**-9): the run stops at the first look that settles it, or at the budget
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [tg20]\nwarmup: 0\n"
                            "engine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n")
    ab(tmp_path, profile, "--b", "engine.simulate_ts=500", "--rounds", str(first), "--max-rounds", str(max_rounds),
       "--max-load", "1000", "--max-steal", "100", "--max-cpu-wait", "100")
    run_dir = next((tmp_path / "results").iterdir())
    labels = {json.loads(line)["cell"].split(":")[0] for line in (run_dir / "samples.jsonl").read_text().splitlines()}
    rounds = 9 if verdict == "regressed" else max_rounds
    assert labels == {f"{v}{r}" for v in "AB" for r in range(1, rounds + 1)}
    report = json.loads((tmp_path / "ab.json").read_text())
    [ts] = [c for c in report["comparisons"] if c["metric"] == "ts"]
    assert ts["verdict"] == verdict and ts["decision"]["method"] == "paired" and ts["decision"]["rounds"] == rounds
    if verdict == "inconclusive":
        assert "6 rounds cannot reach p <= 0.01 at all: raise --max-rounds" in ts["decision"]["reason"]


def test_ab_flags_and_repeats_a_disturbed_round_and_reads_steal_and_load_with_every_sample(tmp_path, tiny_qwen35,
                                                                                           capsys):
    # a load limit of 0 makes every round disturbed: each is measured again once, then kept and flagged.
    # Steal and CPU wait are not judged, so that the reason flagged is the load on any host (a VM's steal varies)
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [tg20]\nwarmup: 0\n"
                            "engine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n")
    ab(tmp_path, profile, "--rounds", "3", "--max-rounds", "3", "--max-load", "0", "--repeat-disturbed", "1",
       "--max-steal", "100", "--max-cpu-wait", "100")
    run_dir = next((tmp_path / "results").iterdir())
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert sorted((s["cell"].split(":")[0], s["attempt"]) for s in samples) == sorted(
        (f"{v}{r}", a) for v in "AB" for r in (1, 2, 3) for a in (1, 2))
    assert all({"steal_pct", "load1", "n_cpus"} <= set(s["host"]) and s["host"]["load1"] > 0 for s in samples)
    report = json.loads((tmp_path / "ab.json").read_text())
    [flags] = report["disturbed"].values()
    assert [f.split(" (")[0] for f in flags] == ["round 1", "round 1", "round 2", "round 2", "round 3", "round 3"]
    assert "load" in flags[0] and flags[0].endswith("measured again after 5 s)")
    assert flags[1].endswith("kept, still disturbed)")
    assert "disturbed: local/tg20" in capsys.readouterr().out


def test_ab_rejects_a_bad_override_naming_it(tmp_path, tiny_qwen35, capsys):
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [tg20]\nengine: {name: sleep}\n")
    assert ab(tmp_path, profile, "--b", "engine.thread=1") == EXIT_ERROR
    assert "engine.thread" in capsys.readouterr().err


def test_ab_refuses_an_unknown_threshold_key_before_it_runs(tmp_path, tiny_qwen35, capsys):
    profile = write_profile(tmp_path / "p.yaml", tiny_qwen35, "tests: [tg20]\nengine: {name: sleep}\n")
    assert ab(tmp_path, profile, "--threshold", "tgg=3%") == EXIT_ERROR
    assert "--threshold tgg=3%: unknown threshold key 'tgg'" in capsys.readouterr().err
    assert ab(tmp_path, profile, "--b", "thresholds.tgg=3%") == EXIT_ERROR
    assert "thresholds.tgg: unknown threshold key 'tgg'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


SLEEPY = "tests: [tg10]\nwarmup: 0\nengine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n"


def model_file(path: Path) -> Path:
    path.write_bytes(random.Random(str(path)).randbytes(4096))  # the sleep engine never reads it
    return path


def test_ab_models_on_the_command_line_are_relative_to_the_current_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "profiles").mkdir()
    profile = write_profile(tmp_path / "profiles" / "p.yaml", model_file(tmp_path / "profiles" / "base.bin"), SLEEPY)
    old, new = model_file(tmp_path / "old.bin"), model_file(tmp_path / "new.bin")
    monkeypatch.chdir(tmp_path)
    two_rounds = ("--rounds", "2", "--max-rounds", "2")
    assert ab(tmp_path, profile, "--a-model", "old.bin", "--b-model", "new.bin", *two_rounds) == 2
    run_dir = next((tmp_path / "results").iterdir())
    started = [c for c in map(json.loads, (run_dir / "cells.jsonl").read_text().splitlines())
               if c["state"] == "started"]
    assert {(c["variant"], c["model_filename"]) for c in started} == {("A", old.name), ("B", new.name)}
    # the gate's label names both models, not only A's
    (ts,) = [c for c in json.loads((tmp_path / "ab.json").read_text())["comparisons"] if c["metric"] == "ts"]
    assert ts["label"] == "local/tg10 (old → new, tauto)"

    capsys.readouterr()
    assert ab(tmp_path, profile, "--a-model", "old.bin", "--b-model", "profiles/nope.bin") == EXIT_ERROR
    assert capsys.readouterr().err.strip() == (
        f"error: --b-model profiles/nope.bin: no such file ({tmp_path / 'profiles' / 'nope.bin'}; a path on the "
        f"command line is relative to the current folder)")
    assert len(list((tmp_path / "results").iterdir())) == 1  # checked before anything ran


def test_show_of_an_ab_run_tells_variants_and_rounds_apart(tmp_path, capsys):
    profile = write_profile(tmp_path / "p.yaml", model_file(tmp_path / "m.bin"), SLEEPY)
    ab(tmp_path, profile, "--b", "engine.simulate_ts=900", "--rounds", "2", "--max-rounds", "2")
    run_dir = next((tmp_path / "results").iterdir())
    capsys.readouterr()
    assert main(["show", str(run_dir), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted((r["variant"], r["round"]) for r in rows) == [("A", 1), ("A", 2), ("B", 1), ("B", 2)]
    assert main(["show", str(run_dir)]) == 0
    header, _rule, *table = capsys.readouterr().out.splitlines()
    assert header.startswith("| device | variant | round | model |")
    assert sorted(line.split("|")[2:4] for line in table) == [[" A ", " 1 "], [" A ", " 2 "], [" B ", " 1 "],
                                                               [" B ", " 2 "]]


def test_ab_on_an_unreachable_device_compares_nothing_and_exits_3(tmp_path, private_known_hosts, capsys):
    from sshd_server import HOST, free_port

    device = tmp_path / "gone.yaml"  # nothing listens on that port
    device.write_text(f"name: gone\ntransport: ssh\nhost: {HOST}\nport: {free_port()}\nuser: nobody\n")
    profile = write_profile(tmp_path / "p.yaml", model_file(tmp_path / "m.bin"), SLEEPY + "retries: 0\n")
    two_rounds = ("--rounds", "2", "--max-rounds", "2")
    assert ab(tmp_path, profile, "--b", "engine.simulate_ts=900", *two_rounds, "-d", str(device)) == EXIT_ERROR
    out = capsys.readouterr().out
    assert "cannot reach device gone" in out
    assert ("0 comparisons: nothing was compared: the base (A) has no samples for any of the 1 cell(s) both sides "
            "ran: it failed to measure them → exit 3") in out
    assert json.loads((tmp_path / "ab.json").read_text())["exit_code"] == EXIT_ERROR
