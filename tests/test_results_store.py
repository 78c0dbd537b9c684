"""The run directory: exclusive creation, append-only records, torn lines, full disks, foreign dirs."""

from __future__ import annotations

import json

import pytest

from edgebench.errors import DiskFullError, ResultsError
from edgebench.results.store import SCHEMA_VERSION, RunStore, read_jsonl, read_meta


def test_each_run_gets_a_new_directory(tmp_path):
    first = RunStore.create(tmp_path, {"profile": {}})
    second = RunStore.create(tmp_path, {"profile": {}})
    assert first.path != second.path and first.path.parent == second.path.parent == tmp_path
    meta = read_meta(first.path)
    assert meta["schema_version"] == SCHEMA_VERSION and meta["status"] == "running"


def test_records_append_and_a_torn_last_line_is_skipped(tmp_path):
    store = RunStore.create(tmp_path, {})
    store.append("samples.jsonl", {"cell": "a", "rep": 0})
    store.append("samples.jsonl", {"cell": "a", "rep": 1})
    store.close()
    with open(store.path / "samples.jsonl", "a") as f:
        f.write('{"cell": "a", "re')  # a controller killed mid-write
    assert [r["rep"] for r in read_jsonl(store.path / "samples.jsonl")] == [0, 1]


def test_a_corrupt_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"rep": 0}\nnot json\n{"rep": 2}\n')
    with pytest.raises(ResultsError, match="samples.jsonl:2"):
        read_jsonl(path)


def test_a_full_disk_is_a_clear_error_and_keeps_what_was_written(tmp_path):
    store = RunStore.create(tmp_path, {})
    store.append("cells.jsonl", {"cell": "a", "state": "started"})
    (store.path / "samples.jsonl").symlink_to("/dev/full")
    with pytest.raises(DiskFullError, match="disk full.*kept"):
        store.append("samples.jsonl", {"cell": "a", "rep": 0})
    assert read_jsonl(store.path / "cells.jsonl") == [{"cell": "a", "state": "started"}]


def test_finish_records_status_and_summary(tmp_path):
    store = RunStore.create(tmp_path, {})
    store.finish("complete", [{"test": "tg4"}])
    assert read_meta(store.path)["status"] == "complete"
    assert json.loads((store.path / "summary.json").read_text())["rows"] == [{"test": "tg4"}]


@pytest.mark.parametrize("content, message", [
    (None, "no run.json"),
    ("{not json", "not valid JSON"),
    ('{"kind": "something-else"}', "not an edgebench run"),
    ('{"kind": "edgebench-run", "schema_version": 999}', "upgrade edgebench"),
])
def test_foreign_or_future_directories_are_refused(tmp_path, content, message):
    if content is not None:
        (tmp_path / "run.json").write_text(content)
    with pytest.raises(ResultsError, match=message):
        read_meta(tmp_path)
