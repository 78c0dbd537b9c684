"""A metric's history from the database: one series per device, model (by hash), test and engine settings,
its points the runs in time order, each labelled with the engine's build commit where the run knew it.

A point is the median of the run's repetitions of that cell (the metric read from each sample as the gate
reads it, compare/metrics.py), or with `point="best"` the best repetition (highest t/s, lowest latency): on
a shared machine whose load comes and goes, the best of several repetitions is the one the others did not
slow down, as timeit reports its minimum. A/B runs are left out: their variants are one experiment, not
history.
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
    created: str
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


def read_series(db, metric: str, device: str | None = None, model: str | None = None,
                test: str | None = None, point: str = "median") -> list[Series]:
    if metric not in METRICS:
        raise EdgebenchError(f"unknown metric {metric!r}; the metrics are {', '.join(METRICS)}")
    if point not in POINTS:
        raise EdgebenchError(f"unknown point statistic {point!r}; use {' or '.join(POINTS)}")
    chosen = METRICS[metric]
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
                    "b.test, b.engine, b.engine_settings, b.build_commit FROM llama_bench b JOIN runs r "
                    f"ON r.run_id = b.run_id WHERE {' AND '.join(where)} ORDER BY r.created, b.run_id", params)
    if model:
        rows = [r for r in rows if model in (r[4], r[5]) or (r[6] or "").startswith(model)]
    samples = _samples(db, {r[0] for r in rows})
    series: dict[tuple, Series] = {}
    for run_id, cell, created, dev, name, _file, sha, test_name, engine, settings, build in rows:
        values = [v for v in (chosen.from_sample(s) for s in samples.get((run_id, cell), ())) if v is not None]
        if not values:
            continue
        key = (dev, sha or name, test_name, engine, settings)
        found = series.setdefault(key, Series(dev, name, sha, test_name, engine, json.loads(settings or "{}"),
                                              chosen))
        found.points.append(Point(run_id, created or "", None if build in UNKNOWN_BUILDS else build,
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
