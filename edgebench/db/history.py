"""A metric's history from the database: one series per device, model (by hash), test and engine settings,
its points the runs in the order they were measured, each labelled with the engine's build commit where the run knew it.

A point is the median of the run's repetitions of that cell (the metric read from each sample as the gate
reads it, compare/metrics.py), or with `point="best"` the best repetition (highest t/s, lowest latency): on
a shared machine whose load comes and goes, the best of several repetitions is the one the others did not
slow down, as timeit reports its minimum. A/B runs are left out: their variants are one experiment, not
history. A measurement is one point however often it is loaded: a shard and the run merged from it hold
the same cells, started at the same time with the same samples, and count once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from edgebench.compare.changepoints import ChangePoint, change_points
from edgebench.compare.metrics import METRICS, Metric
from edgebench.errors import EdgebenchError
from edgebench.results.order_stats import median
from edgebench.results.records import Sample

UNKNOWN_BUILDS = (None, "", "unknown")


@dataclass(frozen=True)
class Point:
    run_id: str
    created: str  # when the cell was measured (its start), else when its run was
    build: str | None  # the engine's build commit, None where unknown
    value: float
    n_samples: int

    @property
    def x_label(self) -> str:
        return self.build[:10] if self.build else self.created


@dataclass
class Series:
    device: str
    model: str
    model_sha256: str | None
    test: str
    engine: str
    settings: dict
    metric: Metric
    points: list[Point] = field(default_factory=list)
    changes: list[ChangePoint] = field(default_factory=list)

    @property
    def title(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.settings.items() if v is not None)
        return f"{self.device} / {self.model} / {self.test} / {self.engine}" + (f" ({shown})" if shown else "")

    @property
    def x_axis(self) -> str:
        return "engine build" if any(p.build for p in self.points) else "time"


POINTS = ("median", "best")


def check_choice(metric: str, point: str = "median") -> Metric:
    """The metric named, checked with the point statistic before a database is opened for them."""
    if metric not in METRICS:
        raise EdgebenchError(f"unknown metric {metric!r}; the metrics are {', '.join(METRICS)}")
    if point not in POINTS:
        raise EdgebenchError(f"unknown point statistic {point!r}; use {' or '.join(POINTS)}")
    return METRICS[metric]


def read_series(db, metric: str, device: str | None = None, model: str | None = None,
                test: str | None = None, point: str = "median") -> list[Series]:
    chosen = check_choice(metric, point)
    best = max if chosen.higher_is_better else min
    reduce = median if point == "median" else best
    where, params = ["b.status = ?", "r.kind = ?"], ["done", "run"]
    if device:
        where.append("b.device = ?")
        params.append(device)
    if test:
        where.append("b.test = ?")
        params.append(test)
    rows = db.query("SELECT b.run_id, b.cell, r.created, b.device, b.model, b.model_filename, b.model_sha256, "
                    "b.test, b.engine, b.engine_settings, b.build_commit, b.test_time FROM llama_bench b JOIN runs r "
                    f"ON r.run_id = b.run_id WHERE {' AND '.join(where)}", params)
    if model:
        rows = [r for r in rows if model in (r[4], r[5]) or (r[6] or "").startswith(model)]
    # in the order they were measured: a merged run's cells keep their start times, not the merge's
    rows.sort(key=lambda r: (r[11] or r[2] or "", r[2] or "", r[0]))
    samples = _samples(db, {r[0] for r in rows})
    series: dict[tuple, Series] = {}
    seen: set[tuple] = set()
    for run_id, cell, created, dev, name, _file, sha, test_name, engine, settings, build, started in rows:
        measured = samples.get((run_id, cell), ())
        # one measurement, one point: the same cell in a shard and in the run merged from it is loaded twice
        identity = (dev, cell, started or run_id, tuple(s.t_ns for s in measured))
        values = [v for v in (chosen.from_sample(s) for s in measured) if v is not None]
        if not values or identity in seen:
            continue
        seen.add(identity)
        key = (dev, sha or name, test_name, engine, settings)
        found = series.setdefault(key, Series(dev, name, sha, test_name, engine, json.loads(settings or "{}"),
                                              chosen))
        found.points.append(Point(run_id, started or created or "", None if build in UNKNOWN_BUILDS else build,
                                  reduce(values), len(values)))
    for found in series.values():
        found.changes = change_points([p.value for p in found.points], chosen.higher_is_better)
    return list(series.values())


def _samples(db, run_ids: set[str]) -> dict[tuple[str, str], list[Sample]]:
    found: dict[tuple[str, str], list[Sample]] = {}
    for run_id in sorted(run_ids):
        for cell, attempt, rep, n_tokens, t_ns, ts, ttft_ns, window, host in db.query(
                "SELECT cell, attempt, rep, n_tokens, t_ns, ts, ttft_ns, sample_window, host FROM samples "
                "WHERE run_id = ? ORDER BY cell, rep", (run_id,)):
            found.setdefault((run_id, cell), []).append(Sample(
                cell=cell, attempt=attempt, n_tokens=n_tokens, rep=rep, t_ns=t_ns, ts=ts, ttft_ns=ttft_ns,
                window=json.loads(window or "{}"), host=json.loads(host or "{}")))
    return found


def why_no_series(db, metric: str, device: str | None = None, model: str | None = None,
                  test: str | None = None) -> str:
    """Why `read_series` found nothing, in one sentence: the filter that matches no measured cell, with what
    the database has instead; else that the filters match nothing together, or cells without the metric."""
    rows = db.query("SELECT DISTINCT b.device, b.model, b.model_filename, b.model_sha256, b.test FROM llama_bench b "
                    "JOIN runs r ON r.run_id = b.run_id WHERE b.status = ? AND r.kind = ?", ("done", "run"))
    if not rows:
        return f"the database {db.url} holds no measured run (load runs with `edgebench db load RUN_DIR...`)"
    filters = {  # name: (value, does a row match it, the row's value to list)
        "device": (device, lambda r: r[0] == device, lambda r: r[0]),
        "model": (model, lambda r: model in (r[1], r[2]) or (r[3] or "").startswith(model), lambda r: r[1]),
        "test": (test, lambda r: r[4] == test, lambda r: r[4]),
    }
    given = {name: f for name, f in filters.items() if f[0]}
    for name, (value, match, shown) in given.items():
        if not any(match(r) for r in rows):
            have = ", ".join(sorted({str(shown(r)) for r in rows}))
            return f"no {name} {value!r} in the database {db.url} (its {name}s: {have})"
    what = ", ".join(f"{name} {value!r}" for name, (value, _, _) in given.items()) or "the measured runs"
    if not any(all(match(r) for _, match, _ in given.values()) for r in rows):
        return f"no measured cell in the database {db.url} matches {what} together"
    return f"the cells of {what} in the database {db.url} have no {metric} values (their tests do not measure it)"
