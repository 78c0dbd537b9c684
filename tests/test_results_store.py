"""The run directory: exclusive creation, append-only typed records with their versions, torn lines,
full disks, foreign dirs, records of older and newer layouts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from edgebench.cli import EXIT_ERROR, EXIT_OK, main
from edgebench.errors import DiskFullError, ResultsError
from edgebench.results.aggregate import run_rows
from edgebench.results.header import SCHEMA_VERSION, AbDesign, MergedFrom, PlannedCell, Resumed, RunHeader
from edgebench.results.records import (
    RECORD_VERSION,
    CellEnd,
    CellError,
    CellFacts,
    CellRunning,
    CellStart,
    CoolDown,
    DeviceProbe,
    Sample,
    Telemetry,
    cell_record,
)
from edgebench.results.store import RunStore, read_cell_records, read_header, read_samples

GOLDEN_RUNS = Path(__file__).resolve().parent / "fixtures" / "golden" / "runs"
FILES = ("devices.jsonl", "cells.jsonl", "samples.jsonl", "telemetry.jsonl")


def new_store(root: Path) -> RunStore:
    return RunStore.create(root, profile={}, devices={})


def sample(rep: int, cell: str = "a") -> Sample:
    return Sample(cell=cell, n_tokens=4, rep=rep, t_ns=1_000_000, ts=4000.0)


def test_each_run_gets_a_new_directory(tmp_path):
    first, second = new_store(tmp_path), new_store(tmp_path)
    assert first.path != second.path and first.path.parent == second.path.parent == tmp_path
    header = read_header(first.path)
    assert header.status == "running" and header.run_id == first.path.name
    assert json.loads((first.path / "run.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_records_append_and_a_torn_last_line_is_skipped(tmp_path):
    store = new_store(tmp_path)
    store.append(sample(0))
    store.append(sample(1))
    store.close()
    with open(store.path / "samples.jsonl", "a") as f:
        f.write('{"cell": "a", "re')  # a controller killed mid-write
    assert [s.rep for s in read_samples(store.path)] == [0, 1]


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    good = json.dumps(sample(0).to_json())
    (tmp_path / "samples.jsonl").write_text(f"{good}\nnot json\n{good}\n")
    with pytest.raises(ResultsError, match="samples.jsonl:2"):
        read_samples(tmp_path)


def test_a_full_disk_is_a_clear_error_and_keeps_what_was_written(tmp_path):
    store = new_store(tmp_path)
    store.append(CellStart(cell="a"))
    (store.path / "samples.jsonl").symlink_to("/dev/full")
    with pytest.raises(DiskFullError, match="disk full.*kept"):
        store.append(sample(0))
    assert [(r.cell, r.state) for r in read_cell_records(store.path)] == [("a", "started")]


def test_finish_records_status_and_summary(tmp_path):
    store = new_store(tmp_path)
    store.finish("complete", [{"test": "tg4"}])
    assert read_header(store.path).status == "complete" and read_header(store.path).finished
    assert json.loads((store.path / "summary.json").read_text())["rows"] == [{"test": "tg4"}]


@pytest.mark.parametrize("content, message", [
    (None, "no run.json"),
    ("{not json", "not valid JSON"),
    ('{"kind": "something-else"}', "is not an edgebench run"),
    ('{"kind": "edgebench-run", "schema_version": 999}', "upgrade edgebench"),
])
def test_foreign_or_future_directories_are_refused(tmp_path, content, message):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        read_header(tmp_path)


# every kind of record, with every field set, as a writer builds them
FACTS = CellFacts(variant="B", round=3, device="pi", device_class="sbc", engine="llama.cpp", model="m", test="tg4",
                  n_prompt=0, n_gen=4, n_depth=0, batch=0, n_threads=2, engine_options={"n_batch": 2048})
RECORDS = [
    CellStart(cell="c", attempt=2, facts=FACTS, model_filename="m.gguf", model_sha256="ab" * 32, model_bytes=10,
              cooldown=CoolDown(method="target", waited_s=3.0, start_temp_c=60.0, end_temp_c=50.0, target_c=50.0,
                                reached=True, battery_pct=None), rerun_of="throttled"),
    CellRunning(cell="c", attempt=2, info={"n_threads": 2}, telemetry_sources={"memory": "ok"}, runner_rss_kb=100),
    CellEnd.done("c", 2, {"system_info": "AVX = 1"}, 2048, False),
    CellEnd.failed("c", 3, FACTS, CellError(kind="timeout", message="too slow", transient=False, exit_code=-9,
                                            signal=9, stderr_tail="...", cause="killed")),
    CellEnd.interrupted("c", 4),
    Sample(cell="c", attempt=2, n_tokens=4, rep=0, t_ns=10, ts=4e8, ttft_ns=5, window={"max_temp_c": 61.0}),
    Telemetry(cell="c", attempt=2, t=12.5, readings={"rss_kb": 100, "thermal_c": {"cpu": 61.0}}),
    DeviceProbe(device="pi", transport="ssh", facts={"arch": "aarch64"}, runner={"engines": {}}),
    DeviceProbe(device="pi", transport="ssh", error={"kind": "transport", "message": "probe failed"}),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: f"{type(r).__name__}")
def test_each_record_kind_writes_its_version_and_reads_back_equal(tmp_path, record):
    store = new_store(tmp_path)
    store.append(record)
    store.close()
    (line,) = (store.path / record.FILE).read_text().splitlines()
    assert json.loads(line)["v"] == RECORD_VERSION
    read = cell_record(json.loads(line)) if record.FILE == "cells.jsonl" else type(record).from_json(json.loads(line))
    assert read == record
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.cell = "other"  # records are never changed once made


def test_the_header_reads_back_equal(tmp_path):
    header = RunHeader(run_id="r", status="failed", shard="1/2", profile={"name": "p"}, devices={"pi": {}},
                       cells=(PlannedCell("pi/m/tg4/t2", "pi", "m", "tg4", 2),),
                       ab=AbDesign({"A": {}, "B": {}}, 7, 15), finished="later",
                       resumed=(Resumed("then", 3),), merged_from=(MergedFrom("x", "/x", "1/2", "complete"),),
                       extra={"written_by_a_later_edgebench": True})
    (tmp_path / "run.json").write_text(json.dumps(header.to_json()))
    assert read_header(tmp_path) == header


def test_records_without_a_version_are_read_as_the_first_layout():
    """Every stored line of the run written by edgebench at 2aee22c has no version; they read as layout 1,
    the fields it did not have yet (round, repack) as absent."""
    run = GOLDEN_RUNS / "previous"
    lines = [json.loads(line) for line in (run / "cells.jsonl").read_text().splitlines()]
    assert lines and not any("v" in line for line in lines)
    records = read_cell_records(run)
    assert [r.state for r in records[:3]] == ["started", "running", "done"]
    assert records[0].facts.round is None and "repack" not in records[0].facts.engine_options
    assert records[0].facts.device == "local" and records[0].model_filename == "golden-model.bin"


def run_with(tmp_path: Path, record: dict) -> Path:
    """A copy of a finished run (written before records carried their version) with one more cell record."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("run.json", *FILES):
        (run / name).write_bytes((GOLDEN_RUNS / "local" / name).read_bytes())
    with open(run / "cells.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return run


def test_show_refuses_a_record_of_a_newer_layout_in_one_sentence(tmp_path, capsys):
    run = run_with(tmp_path, {"v": RECORD_VERSION + 1, "cell": "local/golden-model/pp16/tauto", "attempt": 9,
                                "state": "done", "outcome": {"new": "shape"}})
    assert main(["show", str(run)]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    lines = (run / "cells.jsonl").read_text().splitlines()
    assert err == (f"error: {run / 'cells.jsonl'}:{len(lines)}: record version {RECORD_VERSION + 1}: this edgebench "
                   f"reads up to {RECORD_VERSION}; upgrade edgebench")


@pytest.mark.parametrize("record, problem", [
    ({"cell": "x", "state": "paused"}, "cell record with state 'paused'; known: started, running, done"),
    ({"state": "done"}, "cell record without 'cell'"),
    ({"v": "one", "cell": "x", "state": "done"}, "record version 'one' is not a version number"),
    ({"cell": "x", "state": "done", "attempt": "2"}, "cell record whose 'attempt' is '2', not a count"),
])
def test_a_malformed_cell_record_is_one_sentence_with_its_line(tmp_path, capsys, record, problem):
    run = run_with(tmp_path, record)
    assert main(["show", str(run)]) == EXIT_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {run / 'cells.jsonl'}:") and problem in err and "\n" not in err


def test_a_run_mixing_record_layouts_reads_each_line_as_its_own(tmp_path, capsys):
    """A resumed old run: its old lines have no version, the resume's lines have one."""
    run = run_with(tmp_path, CellStart(cell="local/golden-model/tg16/tauto", attempt=2, facts=CellFacts(
        device="local", engine="sleep", model="golden-model", test="tg16", n_prompt=0, n_gen=16, n_depth=0)).to_json())
    rows = {row["test"]: row for row in run_rows(run)}
    assert (rows["tg16"]["status"], rows["tg16"]["attempt"]) == ("interrupted", 2)
    assert rows["pp16"]["status"] == "done" and rows["pp16"]["attempt"] == 1
    assert main(["show", str(run)]) == EXIT_OK


def test_merge_copies_records_as_they_were_written(tmp_path):
    """Merged records keep their layout: the old shards' lines stay without a version, byte for byte."""
    merged = tmp_path / "merged"
    assert main(["merge", str(GOLDEN_RUNS / "shard-1"), str(GOLDEN_RUNS / "shard-2"), "-o", str(merged)]) == EXIT_OK
    for name in FILES:
        shards = b"".join((GOLDEN_RUNS / shard / name).read_bytes() for shard in ("shard-1", "shard-2"))
        assert (merged / name).read_bytes() == shards, name
    header = read_header(merged)
    assert header.command is None and [m.shard for m in header.merged_from] == ["1/2", "2/2"]
