"""The results database, on SQLite and on a real PostgreSQL server the suite starts (tests/postgres_fixtures.py):
`db load` (twice changes nothing), `run --db` loading as it goes, `compare --baseline` and `report` reading
from it, and bad URLs in one sentence. Runs are measured by the real runner and llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.cli import EXIT_ERROR, EXIT_OK, main
from edgebench.db.connection import opened
from edgebench.db.schema import TABLES
from edgebench.db.url import parse_db_url

PROFILE = "tests: [tg8, pp16]\nrepetitions: 3\nwarmup: 1\nengine: {threads: 1}\ntelemetry: {enabled: false}\n"


def device_dir(base: Path) -> Path:
    (base / "devices").mkdir(parents=True, exist_ok=True)
    (base / "devices" / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {base / 'work'}\n")
    return base / "devices"


def measure(base: Path, model: Path, *args) -> Path:
    """One real run of the profile on the local device; its run directory."""
    profile = base / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(model))}]\n{PROFILE}")
    before = set((base / "results").iterdir()) if (base / "results").is_dir() else set()
    code = main(["run", str(profile), "-d", "box", "--devices-dir", str(device_dir(base)), "-o", str(base / "results"),
                 *args])
    assert code == EXIT_OK
    (run_dir,) = set((base / "results").iterdir()) - before - {base / "results" / "edgebench.sqlite"}
    return run_dir


@pytest.fixture(scope="module")
def measured_run(tmp_path_factory, tiny_qwen35) -> Path:
    return measure(tmp_path_factory.mktemp("measured"), tiny_qwen35)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'team.sqlite'}"
    return request.getfixturevalue("postgres_db")


def dump(url: str) -> dict:
    with opened(parse_db_url(url)) as db:
        return {table: sorted(map(repr, db.query(f"SELECT * FROM {table}"))) for table in TABLES}


def test_loading_a_run_twice_changes_nothing(db_url, measured_run, capsys):
    assert main(["db", "load", str(measured_run), "--db", db_url]) == EXIT_OK
    first = dump(db_url)
    assert main(["db", "load", str(measured_run), "--db", db_url]) == EXIT_OK
    assert dump(db_url) == first
    assert len(first["runs"]) == 1 and len(first["llama_bench"]) == 2 and len(first["samples"]) == 6
    assert f"loaded {measured_run}" in capsys.readouterr().out


def test_rows_keep_llama_benchs_field_names(db_url, measured_run):
    main(["db", "load", str(measured_run), "--db", db_url])
    with opened(parse_db_url(db_url)) as db:
        rows = db.query("SELECT model_filename, n_prompt, n_gen, n_threads, avg_ts, stddev_ts, row_json "
                        "FROM llama_bench ORDER BY n_prompt")
    (_, n_prompt, n_gen, threads, avg_ts, _, row), (_, pp, _, _, _, _, _) = rows
    assert (n_prompt, n_gen, threads, pp) == (0, 8, 1, 16)
    assert avg_ts == pytest.approx(json.loads(row)["avg_ts"]) and json.loads(row)["samples_ts"]


def test_run_with_a_database_loads_as_it_goes(db_url, tmp_path, tiny_qwen35, capsys):
    run_dir = measure(tmp_path, tiny_qwen35, "--db", db_url)
    loaded = dump(db_url)
    assert len(loaded["llama_bench"]) == 2 and len(loaded["samples"]) == 6
    assert "loaded into" in capsys.readouterr().out
    main(["db", "load", str(run_dir), "--db", db_url])  # the same run loaded again by hand: nothing changes
    assert dump(db_url) == loaded


def test_a_resumed_run_loads_what_it_adds_and_ends_as_db_load_of_its_directory(db_url, tmp_path, tiny_qwen35):
    (tmp_path / "p.yaml").write_text(f"models: [{json.dumps(str(tiny_qwen35))}]\ntests: [tg4, tg8, tg12]\n"
                                     "repetitions: 2\nwarmup: 0\nengine: {name: sleep, simulate_ts: 1000}\n"
                                     "telemetry: {interval_s: 0.005}\n")
    results = tmp_path / "results"
    assert main(["run", str(tmp_path / "p.yaml"), "-d", "box", "--devices-dir", str(device_dir(tmp_path)),
                 "-o", str(results), "--db", db_url]) == EXIT_OK
    (run_dir,) = results.iterdir()
    cells = run_dir / "cells.jsonl"
    cells.write_text("".join(cells.read_text().splitlines(keepends=True)[:-1]))  # killed before tg12's end
    assert main(["run", "--resume", str(run_dir), "--db", db_url]) == EXIT_OK
    resumed = dump(db_url)
    assert len(resumed["llama_bench"]) == 3 and {r[1] for r in db_query(db_url, "SELECT cell, attempt FROM samples")
                                                  if "tg12" in r[0]} == {2}
    assert main(["db", "load", str(run_dir), "--db", db_url]) == EXIT_OK
    assert dump(db_url) == resumed


def test_a_database_made_before_file_parts_keeps_its_runs(db_url, measured_run, tmp_path):
    """run_files had one row per file and no `part`; opening such a database gives each file part 0."""
    url = parse_db_url(db_url)
    with opened(url) as db, db.transaction():
        db.execute("DROP TABLE run_files")
        db.execute("CREATE TABLE run_files (run_id TEXT, name TEXT, content TEXT, PRIMARY KEY (run_id, name))")
        db.execute("INSERT INTO run_files (run_id, name, content) VALUES (?, ?, ?)",
                   ("old", "run.json", (measured_run / "run.json").read_text()))
    from edgebench.db.runs import materialize

    with opened(url) as db:
        assert db.query("SELECT run_id, name, part FROM run_files") == [("old", "run.json", 0)]
        rebuilt = materialize(db, "old", tmp_path)
    assert (rebuilt / "run.json").read_text() == (measured_run / "run.json").read_text()
    assert main(["db", "load", str(measured_run), "--db", db_url]) == EXIT_OK


def test_environment_variable_names_the_database(measured_run, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("EDGEBENCH_DB", url)
    assert main(["db", "load", str(measured_run)]) == EXIT_OK
    assert len(dump(url)["runs"]) == 1


def test_compare_against_a_baseline_kept_in_the_database(db_url, measured_run, tmp_path):
    results = tmp_path / "results"
    assert main(["baseline", "save", str(measured_run), "--name", "main", "-o", str(results), "--db", db_url]) == 0
    (results / "baselines" / "main").rename(tmp_path / "gone")  # only the database has it now
    code = main(["compare", "--baseline", "main", str(measured_run), "--db", db_url, "-o", str(results),
                 "--json", str(tmp_path / "g.json")])
    report = json.loads((tmp_path / "g.json").read_text())
    assert code in (0, 2) and report["comparisons"] and not report["only_base"]
    assert {c["verdict"] for c in report["comparisons"] if c["metric"] == "ts"} <= {"same", "inconclusive"}


def test_report_reads_a_run_by_its_id_from_the_database_and_draws_its_history(db_url, measured_run, tmp_path):
    main(["db", "load", str(measured_run), "--db", db_url])
    out = tmp_path / "r.html"
    assert main(["report", measured_run.name, "-o", str(out), "--db", db_url]) == EXIT_OK
    html = out.read_text()
    assert "<h2>History</h2>" in html and "box / tiny-qwen35-Q8_0 / tg8" in html


@pytest.mark.parametrize("url, says", [
    ("mysql://db/x", "'mysql' is not supported; use sqlite:///FILE or postgresql://"),
    ("postgresql://nobody@127.0.0.1:1/x", "cannot connect to the database postgresql://nobody@127.0.0.1:1/x"),
    ("sqlite:///no/such/folder/x.sqlite", "the folder /no/such/folder does not exist"),
])
def test_a_bad_database_is_one_sentence_and_exit_3(measured_run, url, says, capsys):
    assert main(["db", "load", str(measured_run), "--db", url]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_run_is_in_the_database_cell_by_cell_while_it_goes(tmp_path, tiny_qwen35):
    from edgebench.config import parse_device, parse_profile
    from edgebench.db.feed import DbFeed
    from edgebench.db.runs import materialize
    from edgebench.sweep.device_worker import Observer
    from edgebench.sweep.execute import run_cells

    url = parse_db_url(f"sqlite:///{tmp_path / 'live.sqlite'}")
    seen = []

    class CountAtEachStart(Observer):
        def run_started(self, run_dir, records):
            self.run_dir = run_dir

        def cell_started(self, cell):
            with opened(url) as db:
                seen.append(len(db.query("SELECT cell FROM llama_bench WHERE status = 'done'")))
                # the run read back from the database is the directory as it stands
                copy = materialize(db, self.run_dir.name, tmp_path / f"copy{len(seen)}")
            if len(seen) > 1:  # all but the start this cell just recorded
                for name in ("run.json", "devices.jsonl", "samples.jsonl"):
                    assert (copy / name).read_text() == (self.run_dir / name).read_text()
                lines = (self.run_dir / "cells.jsonl").read_text().splitlines(keepends=True)
                assert (copy / "cells.jsonl").read_text() == "".join(lines[:-1])

    profile = parse_profile(f"models: [{json.dumps(str(tiny_qwen35))}]\ntests: [tg4, tg8, tg12]\nrepetitions: 1\n"
                            "warmup: 0\nengine: {name: sleep, simulate_ts: 1000}\ntelemetry: {enabled: false}\n")
    device = parse_device(f"name: box\ntransport: local\nworkdir: {tmp_path / 'work'}\n")
    feed = DbFeed(url, CountAtEachStart())
    run_cells(profile, [device], tmp_path / "results", observer=feed)
    feed.close()
    assert seen == [0, 1, 2] and feed.error is None
    with opened(url) as db:
        assert db.query("SELECT status FROM runs") == [("complete",)]


SLEEP_PROFILE = ("tests: [tg10]\nrepetitions: 2\nwarmup: 0\nengine: {name: sleep, simulate_ts: 1000}\n"
                 "telemetry: {enabled: false}\n")


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    """A results root as the README's `db load results/*/` meets it: two shards of one run on two local
    devices (the sleep engine times real sleeps: no llama.cpp needed), the run merged from them, and a saved
    baseline under baselines/."""
    base = tmp_path_factory.mktemp("shards")
    model, devices, results = base / "m.gguf", base / "devices", base / "results"
    assert main(["synth", "--like", "tiny-qwen35", "-o", str(model)]) == EXIT_OK
    devices.mkdir()
    for i in (0, 1):
        (devices / f"dev{i}.yaml").write_text(f"name: dev{i}\ntransport: local\nworkdir: {base / f'work{i}'}\n")
    (base / "p.yaml").write_text(f"models: [{json.dumps(str(model))}]\n{SLEEP_PROFILE}")
    for shard in ("1/2", "2/2"):
        assert main(["run", str(base / "p.yaml"), "-d", "dev0", "-d", "dev1", "--devices-dir", str(devices),
                     "--shard", shard, "-o", str(results)]) == EXIT_OK
    shards = sorted(results.iterdir())
    assert main(["merge", *map(str, shards), "-o", str(results / "merged")]) == EXIT_OK
    assert main(["baseline", "save", str(shards[0]), "--name", "main", "-o", str(results)]) == EXIT_OK
    return results


def shard_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.name not in ("merged", "baselines"))


def test_db_load_of_a_whole_results_folder_skips_what_is_not_a_run_and_loads_the_rest(results_root, tmp_path,
                                                                                     capsys):
    url = f"sqlite:///{tmp_path / 'all.sqlite'}"
    every_folder = [f"{p}/" for p in sorted(results_root.iterdir())]  # what the shell makes of results/*/
    assert main(["db", "load", *every_folder, "--db", url]) == EXIT_OK
    assert f"skipped {results_root / 'baselines'}: not a run directory (no run.json)" in capsys.readouterr().out
    assert sorted(run_id for (run_id,) in db_query(url, "SELECT run_id FROM runs")) == sorted(
        [p.name for p in shard_dirs(results_root)] + ["merged"])
    assert main(["db", "load", str(results_root / "baselines"), "--db", url]) == EXIT_ERROR
    assert "nothing to load: no run directory among" in capsys.readouterr().err


def test_a_run_directory_that_cannot_be_read_is_reported_and_the_others_are_loaded(results_root, tmp_path, capsys):
    url, broken = f"sqlite:///{tmp_path / 'b.sqlite'}", tmp_path / "broken"
    broken.mkdir()
    (broken / "run.json").write_text("{")
    shard = shard_dirs(results_root)[0]
    assert main(["db", "load", str(broken), str(shard), "--db", url]) == EXIT_ERROR
    out = capsys.readouterr().out
    assert f"not loaded {broken}: {broken / 'run.json'} is not valid JSON" in out and "1 of 2 run" in out
    assert db_query(url, "SELECT run_id FROM runs") == [(shard.name,)]


def test_a_merged_run_loaded_beside_its_shards_is_one_point_per_measurement(results_root, tmp_path, capsys):
    from edgebench.db.history import read_series

    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    shards = shard_dirs(results_root)
    assert main(["db", "load", *map(str, shards), str(results_root / "merged"), "--db", url]) == EXIT_OK
    with opened(parse_db_url(url)) as db:
        series = read_series(db, "ts")
    assert sorted((s.device, len(s.points)) for s in series) == [("dev0", 1), ("dev1", 1)]
    # the point keeps the shard that measured it, and the time its cell started
    assert {s.points[0].run_id for s in series} == {p.name for p in shards}
    capsys.readouterr()
    assert main(["history", "--db", url]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.count("by time, 1 runs") == 2 and "merged" not in out


def test_baseline_list_lists_the_baselines_kept_in_the_database(results_root, tmp_path, capsys):
    url, results = f"sqlite:///{tmp_path / 'b.sqlite'}", tmp_path / "results"
    shard = shard_dirs(results_root)[0]
    assert main(["baseline", "save", str(shard), "--name", "nightly", "-o", str(results), "--db", url]) == EXIT_OK
    (results / "baselines" / "nightly").rename(tmp_path / "gone")  # only the database has it now
    capsys.readouterr()
    assert main(["baseline", "list", "-o", str(results), "--db", url]) == EXIT_OK
    (line,) = [row for row in capsys.readouterr().out.splitlines() if "nightly" in row]
    assert shard.name in line and "dev0" in line and str(parse_db_url(url)) in line


@pytest.mark.parametrize("command", [
    ["history", "--db", "{db}"],
    ["history", "-o", "{root}"],
    ["baseline", "list", "-o", "{root}", "--db", "{db}"],
    ["compare", "--baseline", "main", "{run}", "-o", "{root}", "--db", "{db}"],
    ["report", "{run}", "-o", "{root}/r.html", "--db", "{db}"],
])
def test_reading_commands_refuse_a_database_that_does_not_exist_and_create_none(results_root, tmp_path, command,
                                                                                capsys):
    root = tmp_path / "results"
    root.mkdir()
    missing = tmp_path / "typo.sqlite" if "--db" in command else root / "edgebench.sqlite"
    args = [a.format(db=missing, root=root, run=shard_dirs(results_root)[0]) for a in command]
    assert main(args) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"no database {missing}: the file does not exist" in err and len(err.strip().splitlines()) == 1
    assert not missing.exists()


def db_query(url: str, sql: str) -> list[tuple]:
    with opened(parse_db_url(url)) as db:
        return db.query(sql)
