"""`edgebench run` and `edgebench show` end to end on the local device, through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from terminal import after_live_display, run_in_terminal

from edgebench.results.aggregate import LLAMA_BENCH_FIELDS, run_rows
from edgebench.results.export import table_cells
from edgebench.results.records import RECORD_VERSION, CellEnd, CellRunning, CellStart, DeviceProbe, Sample, Telemetry
from edgebench.results.store import read_records

REPO = Path(__file__).resolve().parent.parent


def edgebench(*args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def write_profile(path: Path, models, tests=("pp16", "tg4"), **extra) -> Path:
    lines = ["models:"] + [f"  - {m}" for m in models] + ["tests:"] + [f"  - {t}" for t in tests]
    lines += ["repetitions: 2", "warmup: 1", "engine:", "  threads: 2", "telemetry:", "  interval_s: 0.1"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def only_run_dir(root: Path) -> Path:
    runs = [p for p in root.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def read_jsonl(path: Path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_qwen35):
    """One real run with two tests, shared by the read-side tests below."""
    work = tmp_path_factory.mktemp("run")
    device = work / "devices" / "testbox.yaml"
    device.parent.mkdir()
    device.write_text(f"name: testbox\ntransport: local\nclass: desktop\nworkdir: {work / 'device'}\n")
    profile = write_profile(work / "p.yaml", [tiny_qwen35], tests=("pp16", "tg4", "pp16+tg4@d8"))
    proc = edgebench("run", profile, "-d", "testbox", "-o", work / "results", cwd=work)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return work, only_run_dir(work / "results"), proc


def test_run_stores_every_record_and_prints_a_table(finished_run):
    _work, run_dir, proc = finished_run
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["schema_version"] == 1 and meta["status"] == "complete"
    assert meta["devices"]["testbox"]["class"] == "desktop"
    assert [c["test"] for c in meta["cells"]] == ["pp16", "tg4", "pp16+tg4@d8"]
    samples = read_jsonl(run_dir / "samples.jsonl")
    assert len(samples) == 3 * 2
    assert {s["cell"] for s in samples} == {c["id"] for c in meta["cells"]}
    assert read_jsonl(run_dir / "telemetry.jsonl")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["status"] for r in summary["rows"]] == ["done"] * 3
    assert "| testbox |" in proc.stdout and "pp16+tg4@d8" in proc.stdout
    assert f"results: {run_dir}" in proc.stdout


def test_every_record_of_a_run_carries_its_version_and_reads_back_as_written(finished_run):
    _work, run_dir, _proc = finished_run
    kinds = {"devices.jsonl": {DeviceProbe}, "cells.jsonl": {CellStart, CellRunning, CellEnd},
             "samples.jsonl": {Sample}, "telemetry.jsonl": {Telemetry}}
    for name, expected in kinds.items():
        lines = [json.loads(line) for line in (run_dir / name).read_text().splitlines()]
        records = read_records(run_dir, name)
        assert lines and all(line["v"] == RECORD_VERSION for line in lines), name
        assert {type(r) for r in records} == expected, name
        assert [r.to_json() for r in records] == lines, name  # nothing a reader drops


def test_show_markdown_has_speed_ttft_and_memory(finished_run):
    work, run_dir, _ = finished_run
    proc = edgebench("show", run_dir, cwd=work)
    assert proc.returncode == 0
    header, _rule, *rows = proc.stdout.splitlines()
    assert "t/s" in header and "TTFT ms" in header and "peak RSS MiB" in header
    assert len(rows) == 3
    tg_row = next(r for r in rows if "| tg4 |" in r)
    cells = [c.strip() for c in tg_row.strip("|").split("|")]
    assert float(cells[7].split("±")[0]) > 0 and cells[8] == ""  # tg has no TTFT
    assert float(cells[9]) > 0


def test_jsonl_json_csv_use_llama_bench_field_names(finished_run):
    work, run_dir, _ = finished_run
    jsonl = [json.loads(line) for line in edgebench("show", run_dir, "--format", "jsonl", cwd=work).stdout.splitlines()]
    as_json = json.loads(edgebench("show", run_dir, "--format", "json", cwd=work).stdout)
    as_csv = list(csv.DictReader(io.StringIO(edgebench("show", run_dir, "--format", "csv", cwd=work).stdout)))
    assert len(jsonl) == len(as_json) == len(as_csv) == 3
    for row in jsonl:
        assert set(LLAMA_BENCH_FIELDS) <= set(row)
        assert len(row["samples_ns"]) == len(row["samples_ts"]) == 2
        assert row["avg_ts"] == pytest.approx(sum(row["samples_ts"]) / 2)
        assert row["n_prompt"] + row["n_gen"] > 0 and row["model_sha256"]
    assert [r["test"] for r in as_csv] == [r["test"] for r in jsonl]
    assert json.loads(as_csv[0]["samples_ns"]) == jsonl[0]["samples_ns"]


def test_sqlite_export_round_trips_in_llama_bench_layout(finished_run, tmp_path):
    work, run_dir, _ = finished_run
    db_path = tmp_path / "out.sqlite"
    assert edgebench("show", run_dir, "--format", "sqlite", "-o", db_path, cwd=work).returncode == 0
    jsonl = [json.loads(line) for line in edgebench("show", run_dir, "--format", "jsonl", cwd=work).stdout.splitlines()]
    with sqlite3.connect(db_path) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM llama_bench ORDER BY rowid")]
    assert [(r["n_prompt"], r["n_gen"], r["n_depth"]) for r in rows] == \
        [(r["n_prompt"], r["n_gen"], r["n_depth"]) for r in jsonl]
    assert [r["avg_ts"] for r in rows] == pytest.approx([r["avg_ts"] for r in jsonl])
    assert json.loads(rows[0]["samples_ns"]) == jsonl[0]["samples_ns"]


@pytest.mark.parametrize("fmt", ["jsonl", "sqlite"])
def test_compare_llama_bench_reads_our_exports(finished_run, tmp_path, compare_llama_bench_script, fmt):
    work, run_dir, _ = finished_run
    out = tmp_path / f"ours.{fmt}"
    assert edgebench("show", run_dir, "--format", fmt, "-o", out, cwd=work).returncode == 0
    proc = subprocess.run([sys.executable, str(compare_llama_bench_script), "-t", "llama-bench", "-i", str(out),
                           "-b", "unknown",
                           "-c", "unknown"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "pp16" in proc.stdout and "tg4" in proc.stdout


def test_sqlite_export_replaces_the_file_of_an_earlier_export(finished_run, tmp_path):
    work, run_dir, _ = finished_run
    db_path = tmp_path / "out.db"
    for _ in range(2):
        assert edgebench("show", run_dir, "--format", "sqlite", "-o", db_path, cwd=work).returncode == 0
    with sqlite3.connect(db_path) as db:
        count = db.execute("SELECT COUNT(*) FROM llama_bench").fetchone()[0]
    assert count == 3  # pp16, tg4, pp16+tg4@d8 once each, not twice
    assert [p.name for p in tmp_path.iterdir()] == ["out.db"]


@pytest.mark.parametrize("command, what", [
    (["report", "{run}", "-o", "{out}/r.html"], "report"),
    (["show", "{run}", "--format", "csv", "-o", "{out}/x.csv"], "csv export"),
    (["show", "{run}", "--format", "md", "-o", "{out}/x.md"], "md export"),
    (["show", "{run}", "--format", "sqlite", "-o", "{out}/x.db"], "sqlite export"),
    (["compare", "{run}", "{run}", "--json", "{out}/gate.json"], "JSON report"),
    (["compare", "{run}", "{run}", "--junit", "{out}/junit.xml"], "JUnit report"),
    (["compare", "{run}", "{run}", "--markdown", "{out}/gate.md"], "markdown report"),
    (["synth", "--like", "tiny-llama", "-o", "{out}/m.gguf"], "model"),
    (["quantize", "{run}/run.json", "--int8", "-o", "{out}/m.onnx"], "int8 model"),
])
def test_an_output_path_in_a_missing_folder_is_one_sentence(finished_run, tmp_path, command, what):
    work, run_dir, _ = finished_run
    missing = tmp_path / "nodir"
    args = [a.format(run=run_dir, out=missing) for a in command]
    proc = edgebench(*args, cwd=work)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot write the {what} to {args[args.index('-o') + 1] if '-o' in args else args[-1]}: "
        f"the folder {missing} does not exist"]
    assert not missing.exists()


def test_an_empty_markdown_path_names_the_variable_it_likely_came_from(finished_run):
    # the README's `--markdown "$GITHUB_STEP_SUMMARY"` outside GitHub Actions: the shell passes ""
    work, run_dir, _ = finished_run
    proc = edgebench("compare", run_dir, run_dir, "--markdown", "", cwd=work, env={"GITHUB_STEP_SUMMARY": ""})
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: cannot write the markdown report: the path is empty (is "
                                   "$GITHUB_STEP_SUMMARY set? GitHub Actions sets it; elsewhere it is empty: "
                                   "give a file name)")
    junit = edgebench("compare", run_dir, run_dir, "--junit", "", cwd=work)
    assert junit.returncode == 3 and "the path is empty (an unset shell variable?" in junit.stderr


def test_an_output_path_that_is_a_folder_is_one_sentence(finished_run, tmp_path):
    work, run_dir, _ = finished_run
    proc = edgebench("report", run_dir, "-o", tmp_path, cwd=work)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: cannot write the report to {tmp_path}: that is a folder; give a file name"


def test_a_results_root_that_is_a_file_is_one_sentence(tmp_path, tiny_qwen35):
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("tg4",))
    (tmp_path / "results").write_text("not a folder")
    proc = edgebench("run", profile, "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: cannot use {tmp_path / 'results'} as the results root: it is a file, "
                                   f"not a folder")


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path, tiny_qwen35, local_device_file):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(tiny_qwen35.read_bytes()[:4096])
    profile = write_profile(tmp_path / "p.yaml", [broken, tiny_qwen35], tests=("tg4",))
    proc = edgebench("run", profile, "-d", local_device_file, "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 1
    assert "1 cell(s) failed" in proc.stdout and "broken" in proc.stdout
    run_dir = only_run_dir(tmp_path / "results")
    rows = json.loads((run_dir / "summary.json").read_text())["rows"]
    assert [(r["model"], r["status"]) for r in rows] == [("broken", "failed"), (tiny_qwen35.stem, "done")]
    assert "could not load" in rows[0]["error"]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def _fake_python(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake-python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return script


def _device_with_python(tmp_path: Path, python: Path) -> Path:
    device = tmp_path / "odd.yaml"
    device.write_text(f"name: odd\ntransport: local\nworkdir: {tmp_path / 'work'}\npython: {python}\n")
    return device


def test_a_hung_runner_is_killed_at_the_cell_timeout(tmp_path, tiny_qwen35):
    pid_file = tmp_path / "pid"
    device = _device_with_python(tmp_path, _fake_python(tmp_path, f"echo $$ > {pid_file}; exec sleep 300"))
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("tg4",), timeout_s=1)
    proc = edgebench("run", profile, "-d", device, "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 1 and "timeout" in proc.stdout
    cells = read_jsonl(only_run_dir(tmp_path / "results") / "cells.jsonl")
    assert cells[-1]["state"] == "failed" and cells[-1]["error"]["kind"] == "timeout"
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_a_crashing_runner_reports_its_signal_and_stderr(tmp_path, tiny_qwen35):
    device = _device_with_python(tmp_path, _fake_python(tmp_path, "echo 'segfault ahead' >&2; kill -SEGV $$"))
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("tg4", "pp16"))
    proc = edgebench("run", profile, "-d", device, "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 1 and "2 cell(s) failed" in proc.stdout
    failed = [c for c in read_jsonl(only_run_dir(tmp_path / "results") / "cells.jsonl") if c["state"] == "failed"]
    assert len(failed) == 2
    assert failed[0]["error"]["signal"] == signal.SIGSEGV and "segfault ahead" in failed[0]["error"]["stderr_tail"]


def test_an_interrupted_controller_keeps_every_finished_sample(tmp_path, tiny_qwen35, local_device_file):
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("tg4", "tg8192", "tg8"))
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", "run", str(profile), "-d", str(local_device_file),
                             "-o", str(tmp_path / "results")], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples = None
    for _ in range(1200):  # poll until the first cell is stored and the long one is running
        time.sleep(0.1)
        found = list((tmp_path / "results").glob("*/samples.jsonl"))
        cells = found[0].with_name("cells.jsonl") if found else None
        if found and found[0].read_text().count("\n") >= 2 and cells.is_file() and any(
                c["state"] == "running" and "/tg8192/" in c["cell"] for c in read_jsonl(cells)):
            samples = found[0]
            break
    assert samples is not None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    run_dir = samples.parent
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    kept = read_jsonl(samples)
    assert len(kept) >= 2 and all(s["cell"].startswith("testbox/") for s in kept)
    states = [c["state"] for c in read_jsonl(run_dir / "cells.jsonl")]
    assert "interrupted" in states
    show = edgebench("show", run_dir, cwd=tmp_path)
    assert show.returncode == 0 and "| tg4 |" in show.stdout


def test_a_bad_profile_names_file_line_and_key(tmp_path, local_device_file):
    profile = tmp_path / "bad.yaml"
    profile.write_text("models:\n  - synthetic:tiny-qwen35\ntests: [tg4]\nrepetitons: 3\n")
    proc = edgebench("run", profile, "-d", local_device_file, cwd=tmp_path)
    assert proc.returncode == 3
    assert "bad.yaml:4" in proc.stderr and "repetitons" in proc.stderr and "repetitions" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_synthetic_models_are_built_once_and_cached(tmp_path, local_device_file, llama_cpp):
    profile = write_profile(tmp_path / "p.yaml", ["synthetic:tiny-llama@Q8_0"], tests=("tg4",))
    env = {"EDGEBENCH_CACHE": str(tmp_path / "cache")}
    for _ in range(2):
        proc = edgebench("run", profile, "-d", local_device_file, "-o", tmp_path / "results", cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr
    built = list((tmp_path / "cache").rglob("*.gguf"))
    assert len(built) == 1
    runs = sorted((tmp_path / "results").iterdir())
    shas = {read_jsonl(r / "cells.jsonl")[0]["model_sha256"] for r in runs}
    assert len(runs) == 2 and len(shas) == 1


def test_devices_list(tmp_path):
    proc = edgebench("devices", "list", "--devices-dir", REPO / "devices", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("local", "rpi5", "pixel8", "jetson-orin-nano", "laptop"):
        assert f"| {name} |" in proc.stdout


def test_devices_list_lists_the_good_profiles_and_names_a_broken_one(tmp_path):
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "box.yaml").write_text("name: box\ntransport: local\n")
    (devices / "pi.yaml").write_text("name: pi\ntransport: ssh\nhost: pi.local\n")
    (devices / "broken.yaml").write_text("name: broken\ntransport: ssh\n  host: [oops\n")
    proc = edgebench("devices", "list", cwd=tmp_path)
    assert "| box |" in proc.stdout and "| pi |" in proc.stdout and "| local |" in proc.stdout
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {Path('devices') / 'broken.yaml'}:") and "malformed YAML" in line
    assert proc.returncode == 3  # listed, but a broken profile still fails the command


def test_synth_command_writes_a_loadable_model(tmp_path, llama_cpp):
    out = tmp_path / "m.gguf"
    proc = edgebench("synth", "--like", "tiny-qwen35", "--quant", "Q4_K_M", "-o", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:4] == b"GGUF"


def test_help_everywhere(tmp_path):
    for args in ([], ["synth"], ["run"], ["show"], ["devices"], ["devices", "list"]):
        proc = edgebench(*args, "--help", cwd=tmp_path)
        assert proc.returncode == 0 and "usage: edgebench" in proc.stdout


def test_without_a_devices_directory_run_uses_a_built_in_local_device(tmp_path, tiny_qwen35):
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("tg4",))
    proc = edgebench("run", profile, "-o", tmp_path / "results", cwd=tmp_path,
                     env={"EDGEBENCH_DEVICES": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((only_run_dir(tmp_path / "results") / "run.json").read_text())
    assert list(meta["devices"]) == ["local"] and meta["devices"]["local"]["transport"] == "local"


def test_an_80_column_terminal_shows_every_value_of_the_results_in_full(tmp_path, tiny_qwen35, local_device_file):
    """Twelve columns do not fit in 80: rather than cut every value short, each cell gets its own block."""
    profile = write_profile(tmp_path / "p.yaml", [tiny_qwen35], tests=("pp16", "tg4"))
    code, shown = run_in_terminal(["run", profile, "-d", local_device_file, "-o", tmp_path / "results"], cwd=tmp_path,
                                  columns=80)
    final = after_live_display(shown).split("results: ")[0]
    assert code == 0, final
    header, body = table_cells(run_rows(only_run_dir(tmp_path / "results")))
    assert len(body) == 2
    for row in body:
        for value in row:
            assert value in final, f"{value!r} is not shown in full:\n{final}"
    assert "…" not in final and max(len(line.rstrip()) for line in final.splitlines()) <= 80


def test_a_run_that_builds_a_synthetic_model_keeps_llama_cpps_log_off_the_terminal(tmp_path, local_device_file):
    profile = write_profile(tmp_path / "p.yaml", ["synthetic:tiny-llama@Q4_K_M?layers=3"], tests=("tg4",))
    cache = tmp_path / "cache"
    code, shown = run_in_terminal(["run", profile, "-d", local_device_file, "-o", tmp_path / "results"], cwd=tmp_path,
                                  env={"EDGEBENCH_CACHE": str(cache)})
    assert code == 0, shown
    assert "llama_model_loader" not in shown and "converting to q4_K" not in shown
    (log,) = (cache / "logs").iterdir()
    assert "llama_model_loader" in log.read_text()


def test_a_cell_that_times_out_after_one_repetition_is_failed_and_compare_says_so(tmp_path, local_device_file):
    # the sleep engine: each repetition of tg300 takes 3 s, so a 5 s timeout ends the cell after one (and
    # leaves the runner 2 s to start on a busy machine)
    model = tmp_path / "model.bin"
    model.write_bytes(os.urandom(4096))
    body = "tests: [tg300]\nrepetitions: 2\nwarmup: 0\nengine: {name: sleep, simulate_ts: 100}\n"
    for name, extra in (("base", ""), ("cand", "timeout_s: 5\n")):
        (tmp_path / f"{name}.yaml").write_text(f"models: [{json.dumps(str(model))}]\n{body}{extra}")
        proc = edgebench("run", tmp_path / f"{name}.yaml", "-d", local_device_file, "-o", tmp_path / name, cwd=tmp_path)
        assert proc.returncode == (0 if name == "base" else 1), proc.stdout + proc.stderr
    base, cand = only_run_dir(tmp_path / "base"), only_run_dir(tmp_path / "cand")
    assert len(read_jsonl(cand / "samples.jsonl")) == 1  # the repetition before the timeout is kept

    show = edgebench("show", cand, cwd=tmp_path).stdout
    assert "| tg300 |" not in show  # not a measured row
    assert ("- testbox / model / tg300: runner exceeded the 5 s cell timeout and was killed "
            "(1 repetition measured before that, kept in samples.jsonl)") in show, show
    # llama-bench's formats hold measured cells only
    assert json.loads(edgebench("show", cand, "--format", "json", cwd=tmp_path).stdout) == []

    gate = edgebench("compare", base, cand, "--json", tmp_path / "gate.json", cwd=tmp_path)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    verdicts = {c["metric"]: c["verdict"] for c in json.loads((tmp_path / "gate.json").read_text())["comparisons"]}
    assert verdicts["ts"] == "failed"


def test_rows_and_run_json_record_swa_full_and_n_cpu_moe(tmp_path, tiny_qwen35):
    """Two settings that change a sliding-window or MoE model's memory: a row says which were used."""
    profile = tmp_path / "p.yaml"
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [pp16]\nrepetitions: 1\nwarmup: 0\n"
                       "engine: {threads: 2, swa_full: true, n_cpu_moe: 2}\n")
    proc = edgebench("run", profile, "-o", tmp_path / "results", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    run = only_run_dir(tmp_path / "results")
    engine = json.loads((run / "run.json").read_text())["profile"]["engine"]
    assert engine["swa_full"] is True and engine["n_cpu_moe"] == 2
    (row,) = run_rows(run)
    assert row["swa_full"] is True and row["n_cpu_moe"] == 2
    # the default is llama-bench's
    profile.write_text(f"models: [{tiny_qwen35}]\ntests: [pp16]\nrepetitions: 1\nwarmup: 0\n")
    assert edgebench("run", profile, "-o", tmp_path / "results2", cwd=tmp_path).returncode == 0
    (row,) = run_rows(only_run_dir(tmp_path / "results2"))
    assert row["swa_full"] is False and row["n_cpu_moe"] == 0
