"""The result model (results/model.py): one loader that converts every older layout, cells with their
statistics as methods, a run built from records at once or one record at a time, and `compare`
holding two runs to the same machines."""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import pytest
from golden.readback import GOLDEN, KINDS, RUNS

from edgebench.cli import EXIT_ERROR, main
from edgebench.results.header import AbDesign, RunHeader
from edgebench.results.model import COMPLETE, CellResult, Machine, ResultsBuilder, RunResults, load
from edgebench.results.order_stats import quantile
from edgebench.results.records import (
    RECORD_VERSION,
    CellEnd,
    CellFacts,
    CellStart,
    Sample,
    cell_record,
)
from edgebench.results.store import read_cell_records, read_device_probes, read_header, read_samples

STDERR = "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds\n"


def golden_run(kind: str) -> Path:
    return GOLDEN / RUNS / kind


@pytest.mark.parametrize("kind", KINDS)
def test_the_pure_constructor_and_the_builder_make_what_load_makes(kind):
    run = golden_run(kind)
    loaded = load(run)
    header, probes, records, samples = read_header(run), read_device_probes(run), read_cell_records(run), \
        read_samples(run)
    assert RunResults.from_records(header, probes, records, samples) == loaded
    builder = ResultsBuilder(header)
    for record in (*probes, *records, *samples):  # as a controller appends them: samples between cell records
        builder.add(record)
        builder.results()  # asked for midway, what it made must not stick to a cell that changed since
    assert builder.results() == loaded
    assert loaded.rows() == [cell.row() for cell in loaded.cells]


def test_adding_a_record_makes_a_new_run_and_leaves_the_old_one():
    before = load(golden_run("fleet"))
    failed = next(cell for cell in before.cells if not cell.finished)
    retried = CellStart(cell=failed.cell, attempt=failed.attempt + 1, facts=failed.facts)
    after = before.adding(retried)
    assert after.cell(failed.cell).attempt == failed.attempt + 1 and after.cell(failed.cell).end is None
    assert before.cell(failed.cell) == failed
    assert [c.cell for c in after.cells] == [c.cell for c in before.cells]


@pytest.mark.parametrize("kind", ("local", "llama", "resumed"))
def test_a_cells_statistics_are_its_rows(kind):
    for cell in load(golden_run(kind)).cells:
        row = cell.row()
        ts, ns = [s.ts for s in cell.samples], [s.t_ns for s in cell.samples]
        assert cell.values("ts") == tuple(ts) == tuple(row["samples_ts"])
        assert cell.tokens_per_s == cell.mean("ts") == statistics.mean(ts) == row["avg_ts"]
        assert cell.stdev("ts") == (statistics.stdev(ts) if len(ts) > 1 else 0.0) == row["stddev_ts"]
        assert cell.median("ts") == statistics.median(ts)
        assert cell.percentile(90) == quantile(sorted(ns), 0.9) == row["latency_p90_ms"] * 1e6
        assert cell.measured


def test_a_cell_without_samples_has_no_statistics():
    cell = CellResult("c", 1, (CellStart(cell="c"),))
    assert cell.values() == () and cell.mean() is None and cell.stdev() is None and cell.median() is None
    assert cell.percentile(50) is None and not cell.measured and not cell.finished
    with pytest.raises(ValueError):
        cell.values("watts")


def failed_end(version: int) -> CellEnd:
    return cell_record({"v": version, "cell": "c", "attempt": 1, "state": "failed", "device": "d",
                        "engine": "llama.cpp", "error": {"kind": "crashed", "message": "runner died",
                                                         "exit_code": 1, "signal": None, "stderr_tail": STDERR}})


def test_a_first_layout_failure_has_its_cause_taken_out_of_the_stderr_tail():
    header = RunHeader(run_id="r")
    old = RunResults.from_records(header, cells=[failed_end(1)]).cell("c")
    assert old.error.cause == STDERR.strip()
    assert old.row()["error"] == f"runner died; the engine said: {STDERR.strip()}"
    # a record of the current layout says what it says: its cause was kept apart when there was one
    assert RunResults.from_records(header, cells=[failed_end(COMPLETE)]).cell("c").error.cause is None


def test_records_now_carry_the_complete_layouts_version():
    assert RECORD_VERSION == COMPLETE
    line = json.loads(json.dumps(failed_end(1).to_json()))
    assert line["v"] == RECORD_VERSION and cell_record(line).version == RECORD_VERSION
    assert cell_record({k: v for k, v in line.items() if k != "v"}).version == 1


def sleep_cell(version: int, options: dict) -> CellStart:
    return cell_record({"v": version, "cell": "c", "attempt": 1, "state": "started", "device": "d",
                        "engine": "sleep", "model": "m", "test": "tg16", "n_gen": 16, "engine_options": options})


def test_a_first_layout_cell_of_another_engine_holding_llama_cpp_options_shows_them_as_llama_cpp_did():
    header = RunHeader(run_id="r")
    llama_options = {"n_batch": 2048, "n_ubatch": 512, "type_k": "q8_0"}
    old = RunResults.from_records(header, cells=[sleep_cell(1, llama_options)]).cell("c")
    assert old.row_engine == "llama.cpp" and old.row()["type_k"] == "q8_0" and old.row()["n_batch"] == 2048
    own = RunResults.from_records(header, cells=[sleep_cell(COMPLETE, {"simulate_ts": 500})]).cell("c")
    assert own.row_engine == "sleep"


def test_a_cells_settings_are_recorded_else_its_profiles_else_the_default():
    profile = {"engine": {"name": "llama.cpp", "n_batch": 256, "simulate_ts": 1000}}  # every engine's, as once
    header = RunHeader(run_id="r", profile=profile)
    start = cell_record({"cell": "c", "state": "started", "device": "d", "engine": "llama.cpp", "model": "m",
                         "test": "tg16", "engine_options": {"n_ubatch": 128}})
    run = RunResults.from_records(header, cells=[start])
    settings = run.cell("c").settings
    assert settings["n_ubatch"] == 128 and settings["n_batch"] == 256 and settings["repack"] is True
    # the header reads as this edgebench writes it: the engine's own options only
    assert run.header.profile["engine"] == {"name": "llama.cpp", "n_batch": 256}


def test_an_ab_run_stored_before_its_thresholds_were_reads_variant_bs():
    design = AbDesign(variants={"A": {}, "B": {"thresholds": {"tg": 0.03}}}, rounds=7, max_rounds=15)
    assert RunResults.from_records(RunHeader(run_id="r", ab=design)).header.ab.thresholds == {"tg": 0.03}


def test_a_sample_of_an_older_attempt_is_not_the_cells():
    header = RunHeader(run_id="r")
    facts = CellFacts(device="d", engine="sleep", test="tg16", n_gen=16)
    records = [CellStart(cell="c", attempt=1, facts=facts), CellStart(cell="c", attempt=2, facts=facts),
               CellEnd.done("c", 2, {}, None, False)]
    samples = [Sample(cell="c", attempt=1, rep=0, n_tokens=16, t_ns=10**9, ts=16.0),
               Sample(cell="c", attempt=2, rep=1, n_tokens=16, t_ns=10**9, ts=17.0),
               Sample(cell="c", attempt=2, rep=0, n_tokens=16, t_ns=10**9, ts=18.0)]
    cell = RunResults.from_records(header, cells=records, samples=samples).cell("c")
    assert cell.attempt == 2 and cell.values("ts") == (18.0, 17.0) and cell.finished


# -- compare holds two runs to the same machines ---------------------------------------------------


def with_probe(tmp_path: Path, kind: str, name: str, **changes) -> Path:
    """A copy of a golden run whose device probe says another CPU model, core count or RAM."""
    run = Path(shutil.copytree(golden_run(kind), tmp_path / name))
    lines = [json.loads(line) for line in (run / "devices.jsonl").read_text().splitlines()]
    for line in lines:
        facts = line["facts"]
        facts["cpu"]["model"] = changes.get("cpu", facts["cpu"]["model"])
        facts["cpu"]["physical_cores"] = changes.get("cores", facts["cpu"]["physical_cores"])
        facts["memory"]["total_bytes"] = changes.get("ram", facts["memory"]["total_bytes"])
    (run / "devices.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


def test_compare_refuses_runs_of_one_device_name_on_different_machines(tmp_path, capsys):
    base = golden_run("local")
    cand = with_probe(tmp_path, "local", "other", cpu="Cortex-A76", cores=4, ram=8 * 2**30)
    assert main(["compare", str(base), str(cand)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "ran on different machines" in err and "local: CPU 'AMD EPYC' vs 'Cortex-A76', 2 vs 4 cores, " \
           "RAM 23.5 vs 8.0 GiB" in err and "--allow-different-devices" in err and "Traceback" not in err
    assert err.count("\n") == 1  # one sentence
    assert main(["compare", str(base), str(cand), "--allow-different-devices"]) == 0


def test_compare_takes_the_same_machine_with_a_little_less_ram_after_a_kernel_update(tmp_path):
    base = golden_run("local")
    cand = with_probe(tmp_path, "local", "kernel", ram=25276514304 - 100 * 2**20)
    assert main(["compare", str(base), str(cand)]) == 0


def test_a_machine_is_compared_on_what_both_probes_know():
    pi = Machine("Cortex-A76", 4, 8 * 2**30)
    assert pi.differences(Machine(None, None, None)) == []
    assert pi.differences(Machine("Cortex-A76", 4, int(8 * 2**30 * 0.99))) == []
    assert pi.differences(Machine("Cortex-A72", 4, 4 * 2**30)) == ["CPU 'Cortex-A76' vs 'Cortex-A72'",
                                                                  "RAM 8.0 vs 4.0 GiB"]
    assert Machine.of(None) is None
    assert Machine.of({"cpu": {"model": "x", "logical_cores": 8}}) == Machine("x", 8, None)


def test_llama_bench_output_has_no_probe_and_is_not_held_to_one(tmp_path):
    """llama-bench's rows name no device: nothing to check, as before."""
    from edgebench.compare.inputs import load_side

    rows = [{"model_filename": "m.gguf", "n_prompt": 0, "n_gen": 16, "n_threads": 2, "cpu_info": "x",
             "samples_ts": [10.0, 10.1, 9.9, 10.0, 10.2]}]
    path = tmp_path / "lb.json"
    path.write_text(json.dumps(rows))
    assert load_side(path).machines == {}
    assert main(["compare", str(path), str(path)]) == 0


def test_cell_results_are_immutable():
    cell = load(golden_run("local")).cells[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.attempt = 3


def test_a_report_of_two_runs_on_different_machines_compares_them_and_says_so(tmp_path):
    from edgebench.report.html import build_report

    other = with_probe(tmp_path, "local", "other", cpu="Cortex-A76")
    text = build_report([golden_run("local"), other])
    assert "different machines under one device name: local: CPU &#x27;AMD EPYC&#x27; vs &#x27;Cortex-A76&#x27;" \
           in text and "<h2>Comparison:" in text
    assert "different machines" not in build_report([golden_run("local"), golden_run("local")])
