"""Steps in a history series: E-divisive means as Apache Otava implements it (`compute_change_points`,
Fleming et al., ICPE 2023), used as a dependency, never copied. Otava is an extra (`edgebench[history]`):
it brings a cloud data-warehouse client and pins of numpy and scipy with it, which a core install that never
reads a history should not carry.

A change point is the first point of a new level. Its magnitude is the relative change of the mean
(after / before - 1) and its p-value Otava's t-test between the two sides; it is a regression when the
metric moved the worse way (t/s down, latency or memory up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from edgebench.errors import EdgebenchError

# Otava's defaults for a nightly series: a window wide enough for a project's history, a strict p-value
WINDOW = 50
MAX_PVALUE = 0.001
MIN_POINTS = 4  # fewer points than this cannot show a step with a level on each side
MISSING = ("change points need Apache Otava, which edgebench installs as an extra: "
           "pip install 'edgebench[history]'")


@dataclass(frozen=True)
class ChangePoint:
    index: int  # the first point of the new level
    mean_before: float
    mean_after: float
    magnitude: float  # mean_after / mean_before - 1
    p_value: float
    regression: bool


def change_points(values: Sequence[float], higher_is_better: bool, max_pvalue: float = MAX_PVALUE,
                  min_magnitude: float = 0.0, window: int = WINDOW) -> list[ChangePoint]:
    try:  # before the length check: a series too short today must not hide a missing part until tomorrow
        from otava.analysis import compute_change_points
    except ImportError as exc:
        raise EdgebenchError(MISSING) from exc
    if len(values) < MIN_POINTS:
        return []

    found, _weak = compute_change_points([float(v) for v in values], window_len=window, max_pvalue=max_pvalue,
                                         min_magnitude=min_magnitude)
    points = []
    for cp in found:
        before, after = float(cp.stats.mean_1), float(cp.stats.mean_2)
        magnitude = after / before - 1 if before else float("inf")
        points.append(ChangePoint(int(cp.index), before, after, magnitude, float(cp.stats.pvalue),
                                  magnitude < 0 if higher_is_better else magnitude > 0))
    return sorted(points, key=lambda p: p.index)


def regressions_among_newest(points: Sequence[ChangePoint], n_points: int, newest: int) -> list[ChangePoint]:
    """The regressions whose new level begins within the newest `newest` points of a series of `n_points`."""
    return [p for p in points if p.regression and p.index >= n_points - newest]
