"""`edgebench history`: series from the database with E-divisive change points (Apache Otava).

A 6% step is injected into a series made of real measured runs (a tiny model through the real runner and
llama.cpp, loaded into a real PostgreSQL): history finds it where it was put, and finds nothing in the same
runs without it. The series' level is set, not left to the machine: each of its points is a copy of a
measured run under a run id of its own, its repetitions rescaled so that its best is the first run's best
times a fixed spread of a few tenths of a percent (what a dedicated machine's runs differ by), so a shared
machine's passing load cannot move a point and the test means the same on a busy machine as on an idle one.
Whether a 6% step stands out of the runs a machine really measures is a measurement:
tests/perf/history_step.py.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edgebench.cli import EXIT_ERROR, EXIT_FAILED_CELLS, EXIT_OK, main
from edgebench.db.connection import opened
from edgebench.db.history import read_series
from edgebench.db.url import parse_db_url
from edgebench.results.aggregate import run_rows

PROFILE = "tests: [tg256]\nrepetitions: 9\nwarmup: 1\nengine: {threads: 1}\ntelemetry: {enabled: false}\n"
POINTS, STEP_AT, STEP = 12, 6, 1.06
# each point's level relative to the first: the spread of a quiet machine's runs, no trend, no step
SPREAD = (1.0, 0.997, 1.002, 0.999, 1.003, 0.998, 1.001, 0.996, 1.002, 1.0, 0.998, 1.003)
MEASURED = 4


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
def measured_runs(tmp_path_factory, tiny_llama) -> list[Path]:
    return measure_runs(tmp_path_factory.mktemp("history"), tiny_llama, MEASURED)


def _shifted(stamp: str, hours: int) -> str:
    return (datetime.fromisoformat(stamp) + timedelta(hours=hours)).isoformat(timespec="seconds")


def _rewrite(path: Path, change) -> None:
    path.write_text("".join(json.dumps(change(json.loads(line))) + "\n" for line in path.read_text().splitlines()))


def series_runs(measured: list[Path], dest: Path, step: bool) -> list[Path]:
    """POINTS runs made of the measured ones in turn: each a copy under its own run id, an hour after the one
    before, its repetitions' t/s scaled to put its best at the first run's best times SPREAD, and from
    STEP_AT on (with `step`) 6% slower."""
    reference = best_ts(measured[0])
    copies = []
    for i in range(POINTS):
        source = measured[i % len(measured)]
        factor = reference * SPREAD[i] / best_ts(source) / (STEP if step and i >= STEP_AT else 1)
        header = json.loads((source / "run.json").read_text())
        run_id = f"{header['run_id']}-p{i:02d}"
        copy = dest / run_id
        shutil.copytree(source, copy)
        header.update(run_id=run_id, created=_shifted(header["created"], i))
        (copy / "run.json").write_text(json.dumps(header))

        def later(record, hours=i):
            return {k: _shifted(v, hours) if k in ("started", "ended") and v else v for k, v in record.items()}

        def scaled(sample, factor=factor):
            return dict(sample, ts=sample["ts"] * factor, t_ns=round(sample["t_ns"] / factor))

        _rewrite(copy / "cells.jsonl", later)
        _rewrite(copy / "samples.jsonl", scaled)
        copies.append(copy)
    return copies


def series_of(url: str):
    with opened(parse_db_url(url)) as db:
        (series,) = read_series(db, "ts", device="box", test="tg256", point="best")
    return series


def test_history_finds_an_injected_6_percent_step_where_it_is_and_none_without_it(measured_runs, postgres_db,
                                                                                   tmp_path, capsys):
    (tmp_path / "stepped").mkdir()
    (tmp_path / "level").mkdir()
    stepped = series_runs(measured_runs, tmp_path / "stepped", step=True)
    assert main(["db", "load", *map(str, stepped), "--db", postgres_db]) == EXIT_OK
    series = series_of(postgres_db)
    assert [p.run_id for p in series.points] == [r.name for r in stepped]  # in time order
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
    level = series_runs(measured_runs, tmp_path / "level", step=False)
    assert main(["db", "load", *map(str, level), "--db", plain]) == EXIT_OK
    assert series_of(plain).changes == []
    assert main(["history", "--point", "best", "--db", plain, "--fail-on-regression", "--newest", str(POINTS)]) == 0


def test_the_series_key_is_device_model_test_and_engine_settings_and_the_metric_has_its_direction(measured_runs,
                                                                                                   tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    main(["db", "load", *map(str, measured_runs), "--db", url])
    series = series_of(url)
    assert series.settings["n_threads"] == 1 and "system_info" not in series.settings
    assert series.model_sha256 and series.x_axis in ("engine build", "time")
    assert [p.value for p in series.points] == [best_ts(r) for r in measured_runs]
    with opened(parse_db_url(url)) as db:
        (middle,) = read_series(db, "ts", device="box")
    assert [p.value for p in middle.points] == [statistics.median(run_rows(r)[0]["samples_ts"]) for r in measured_runs]
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


@pytest.fixture
def loaded(measured_runs, tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert main(["db", "load", *map(str, measured_runs), "--db", url]) == EXIT_OK
    return url


@pytest.mark.parametrize("selection, says", [
    (["-d", "nobody"], ("no device 'nobody' in the database", "(its devices: box)")),
    (["--test", "pp512"], ("no test 'pp512' in the database", "(its tests: tg256)")),
    (["--model", "qwen"], ("no model 'qwen' in the database", "(its models: tiny-llama-Q8_0)")),
    (["--metric", "ttft"], ("the cells of the measured runs in the database", "have no ttft values")),
])
def test_a_regression_gate_that_matched_no_series_exits_3_with_the_reason(loaded, selection, says, capsys):
    capsys.readouterr()
    code = main(["history", *selection, "--db", loaded, "--fail-on-regression"])
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and all(part in err for part in says) and len(err.strip().splitlines()) == 1
    # without the gate, nothing matched is an answer, with the same reason
    assert main(["history", *selection, "--db", loaded]) == EXIT_OK
    out = capsys.readouterr().out
    assert all(part in out for part in says)


def test_history_without_apache_otava_is_one_sentence_naming_the_extra(loaded):
    """Otava is the `history` extra: where it is not installed (hidden here from the CLI's process), history
    says which extra to install."""
    hide_otava = ("import sys; sys.modules['otava'] = None; from edgebench.cli import main; "
                  f"sys.exit(main(['history', '--db', {loaded!r}]))")
    done = subprocess.run([sys.executable, "-c", hide_otava], capture_output=True, text=True, env=os.environ)
    assert done.returncode == EXIT_ERROR, done.stderr
    assert "change points need Apache Otava" in done.stderr and "pip install 'edgebench[history]'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
