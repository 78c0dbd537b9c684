"""`edgebench merge`: shards of one fleet run become one run; runs that do not belong together are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.cli import EXIT_ERROR, EXIT_OK, main
from edgebench.config import parse_device, parse_profile
from edgebench.errors import ResultsError
from edgebench.results.aggregate import run_rows
from edgebench.results.merge import merge_runs
from edgebench.sweep.execute import run_cells


def fleet(tmp_path: Path, count: int = 3):
    return [parse_device(f"name: dev{i}\ntransport: local\nworkdir: {tmp_path / f'work{i}'}\n", file=f"dev{i}.yaml")
            for i in range(count)]


def profile(tmp_path: Path, model: Path, tests="[tg10, pp10]"):
    return parse_profile(f"models: [{json.dumps(str(model))}]\ntests: {tests}\nrepetitions: 2\nwarmup: 0\n"
                         "engine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n",
                         file=str(tmp_path / "p.yaml"))


@pytest.fixture
def shards(tmp_path, tiny_qwen35):
    bench, devices = profile(tmp_path, tiny_qwen35), fleet(tmp_path)
    return [run_cells(bench, devices, tmp_path / "results", shard=(i, 2)).store.path for i in (1, 2)]


def snapshot(directory: Path) -> dict:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_shards_merge_into_the_whole_run(tmp_path, shards):
    before = [snapshot(s) for s in shards]
    assert main(["merge", *map(str, shards), "-o", str(tmp_path / "all")]) == EXIT_OK
    merged = tmp_path / "all"
    rows = run_rows(merged)
    assert sorted((r["device"], r["test"]) for r in rows) == sorted(
        (f"dev{i}", t) for i in range(3) for t in ("tg10", "pp10"))
    assert all(r["status"] == "done" and r["n_samples"] == 2 for r in rows)
    meta = json.loads((merged / "run.json").read_text())
    assert meta["status"] == "complete" and [m["shard"] for m in meta["merged_from"]] == ["1/2", "2/2"]
    assert len(meta["cells"]) == 6 and set(meta["devices"]) == {"dev0", "dev1", "dev2"}
    assert len(json.loads((merged / "summary.json").read_text())["rows"]) == 6
    assert [snapshot(s) for s in shards] == before  # the sources are only read


def test_the_same_run_twice_is_refused(tmp_path, shards):
    with pytest.raises(ResultsError, match="is the same run as"):
        merge_runs([shards[0], shards[0]], tmp_path / "twice")
    assert not (tmp_path / "twice").exists() and not (tmp_path / "twice.partial").exists()


def test_runs_of_different_profiles_are_refused(tmp_path, tiny_qwen35, shards):
    other = run_cells(profile(tmp_path, tiny_qwen35, tests="[tg20]"), fleet(tmp_path)[1:2], tmp_path / "other")
    with pytest.raises(ResultsError, match="different profile"):
        merge_runs([shards[0], other.store.path], tmp_path / "mixed")


def test_shards_of_different_splits_are_refused(tmp_path, tiny_qwen35, shards):
    third = run_cells(profile(tmp_path, tiny_qwen35), fleet(tmp_path, 6)[3:], tmp_path / "r3", shard=(1, 3))
    with pytest.raises(ResultsError, match="different splits"):
        merge_runs([shards[0], third.store.path], tmp_path / "odd")


def test_an_existing_destination_and_a_foreign_directory_are_refused(tmp_path, shards, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    assert main(["merge", *map(str, shards), "-o", str(taken)]) == EXIT_ERROR
    assert "not empty" in capsys.readouterr().err and (taken / "keep.txt").read_text() == "mine"
    assert main(["merge", str(shards[0]), str(tmp_path), "-o", str(tmp_path / "x")]) == EXIT_ERROR
    assert "not an edgebench run directory" in capsys.readouterr().err
