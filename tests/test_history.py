"""`edgebench history`: series from the database with E-divisive change points (Apache Otava).

A 6% step is injected into a series of real measured runs (a tiny model through the real runner and
llama.cpp, loaded into a real PostgreSQL): history finds it where it was put, and finds nothing in the same
runs without it. This shared VM's load comes in epochs that cut t/s by up to half for tens of seconds, a
real step of its own. So each point is the run's best repetition (`--point best`: the one the passing load
did not slow), and the series keeps the runs whose best is within 2% of the undisturbed speed (the 90th
percentile of the runs' bests: load only ever slows a run), as a dedicated CI machine would measure them.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from edgebench.cli import EXIT_FAILED_CELLS, EXIT_OK, main
from edgebench.db.connection import opened
from edgebench.db.history import read_series
from edgebench.db.url import parse_db_url
from edgebench.results.aggregate import run_rows

PROFILE = "tests: [tg256]\nrepetitions: 9\nwarmup: 1\nengine: {threads: 1}\ntelemetry: {enabled: false}\n"
POINTS, STEP_AT, STEP = 12, 6, 1.06
# within 3%, a CI run once kept points noisy enough beside the 6% step for E-divisive to place a second change
QUIET = 0.02
MAX_RUNS = 80


def measure_runs(base: Path, model: Path, count: int) -> list[Path]:
    devices = base / "devices"
    devices.mkdir(exist_ok=True)
    (devices / "box.yaml").write_text(f"name: box\ntransport: local\nworkdir: {base / 'work'}\n")
    profile = base / "p.yaml"
    profile.write_text(f"models: [{json.dumps(str(model))}]\n{PROFILE}")
    for _ in range(count):
        assert main(["run", str(profile), "-d", "box", "--devices-dir", str(devices), "-o", str(base / "r")]) == 0
    return sorted((base / "r").iterdir())


def best_ts(run_dir: Path) -> float:
    (row,) = run_rows(run_dir)
    return max(row["samples_ts"])


@pytest.fixture(scope="module")
def quiet_runs(tmp_path_factory, tiny_llama) -> list[Path]:
    base = tmp_path_factory.mktemp("history")
    runs = measure_runs(base, tiny_llama, 20)
    while True:
        speeds = {run: best_ts(run) for run in runs}
        undisturbed = statistics.quantiles(speeds.values(), n=10)[-1]
        quiet = [run for run in runs if abs(speeds[run] / undisturbed - 1) <= QUIET]
        if len(quiet) >= POINTS or len(runs) >= MAX_RUNS:
            break
        runs = measure_runs(base, tiny_llama, 5)
    assert len(quiet) >= POINTS, f"only {len(quiet)} of {len(runs)} runs were measured in a quiet stretch"
    return quiet[:POINTS]


def with_step(runs: list[Path], dest: Path) -> list[Path]:
    """Copies of the runs, the later ones made 6% slower: every timed repetition's t/s divided by 1.06."""
    copies = []
    for i, run in enumerate(runs):
        copy = dest / run.name
        shutil.copytree(run, copy)
        if i >= STEP_AT:
            lines = []
            for line in (copy / "samples.jsonl").read_text().splitlines():
                sample = json.loads(line)
                sample["ts"] /= STEP
                sample["t_ns"] = round(sample["t_ns"] * STEP)
                lines.append(json.dumps(sample))
            (copy / "samples.jsonl").write_text("\n".join(lines) + "\n")
        copies.append(copy)
    return copies


def series_of(url: str):
    with opened(parse_db_url(url)) as db:
        (series,) = read_series(db, "ts", device="box", test="tg256", point="best")
    return series


def test_history_finds_an_injected_6_percent_step_where_it_is_and_none_without_it(quiet_runs, postgres_db, tmp_path,
                                                                                   capsys):
    stepped = with_step(quiet_runs, tmp_path)
    assert main(["db", "load", *map(str, stepped), "--db", postgres_db]) == EXIT_OK
    series = series_of(postgres_db)
    assert [p.run_id for p in series.points] == [r.name for r in quiet_runs]  # in time order
    (change,) = series.changes
    assert change.index == STEP_AT and change.regression and change.p_value <= 0.001
    assert change.magnitude == pytest.approx(1 / STEP - 1, abs=0.02)
    capsys.readouterr()
    code = main(["history", "-d", "box", "--test", "tg256", "--point", "best", "--db", postgres_db,
                 "--fail-on-regression", "--newest", str(POINTS - STEP_AT)])
    out = capsys.readouterr().out
    assert code == EXIT_FAILED_CELLS and "REGRESSION -" in out and f"from point {STEP_AT}" in out
    # the step is older than the newest 5 points: a CI gate on the newest 5 passes
    assert main(["history", "--point", "best", "--db", postgres_db, "--fail-on-regression", "--newest", "5"]) == 0

    plain = f"sqlite:///{tmp_path / 'plain.sqlite'}"
    assert main(["db", "load", *map(str, quiet_runs), "--db", plain]) == EXIT_OK
    assert series_of(plain).changes == []
    assert main(["history", "--point", "best", "--db", plain, "--fail-on-regression", "--newest", str(POINTS)]) == 0


def test_the_series_key_is_device_model_test_and_engine_settings_and_the_metric_has_its_direction(quiet_runs,
                                                                                                   tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    main(["db", "load", *map(str, quiet_runs[:4]), "--db", url])
    series = series_of(url)
    assert series.settings["n_threads"] == 1 and "system_info" not in series.settings
    assert series.model_sha256 and series.x_axis in ("engine build", "time")
    assert [p.value for p in series.points] == [best_ts(r) for r in quiet_runs[:4]]
    with opened(parse_db_url(url)) as db:
        (middle,) = read_series(db, "ts", device="box")
    assert [p.value for p in middle.points] == [statistics.median(run_rows(r)[0]["samples_ts"]) for r in quiet_runs[:4]]
    with opened(parse_db_url(url)) as db:
        assert read_series(db, "ttft", device="box") == []  # a tg test has no time to first token
        assert read_series(db, "ts", device="nobody") == []


@pytest.mark.parametrize("higher_is_better, regression", [(True, False), (False, True)])
def test_a_step_up_is_a_regression_only_where_lower_is_better(higher_is_better, regression):
    from edgebench.compare.changepoints import change_points

    values = [100 + (i % 3) * 0.5 for i in range(8)] + [110 + (i % 3) * 0.5 for i in range(8)]
    (change,) = change_points(values, higher_is_better)
    assert change.index == 8 and change.regression is regression and change.magnitude == pytest.approx(0.1, abs=0.01)


def test_history_of_an_unknown_metric_is_one_sentence(tmp_path, capsys):
    assert main(["history", "--metric", "tokens", "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"]) == 3
    assert "unknown metric 'tokens'; the metrics are ts, ttft" in capsys.readouterr().err
