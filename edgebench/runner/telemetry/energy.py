"""Energy over a window, from whichever source measures it best.

- `energy_j` / `energy_source`: from a source that counts energy itself (its `energy` hook, e.g.
  RAPL counters, named by the source: "rapl"), or else from integrating the sampler's
  `power_total_w` with the trapezoid rule ("power"). None with fewer than two readings.
- `avg_power_w`: energy_j over the span it was measured on.
- `j_per_token`: energy_j / the window's tokens.
- Row columns: `energy_j` summed over the repetitions, `j_per_token` that sum over all their tokens.

With the window's exact bounds, energy is interpolated to them (assuming steady power between
readings) instead of covering the bracketing records' whole span.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from .base import SOURCES, summary
from .columns import Column, per_token, total

Series = List[Tuple[float, float]]


@summary("energy", order=36, columns=[Column("energy_j", total("energy_j")),
                                      Column("j_per_token", per_token("energy_j"))])
def summarize(window) -> dict:
    energy, source, span = _energy(window)
    return {
        "energy_j": energy,
        "energy_source": source,
        "avg_power_w": energy / span if energy is not None and span > 0 else None,
        "j_per_token": energy / window.n_tokens if energy is not None and window.n_tokens else None,
    }


def _energy(window):
    """(joules, source, seconds covered) from the best source, or (None, None, 0)."""
    series, source = [], "power"
    for candidate in SOURCES.values():
        found = candidate.energy(window) if candidate.energy is not None else []
        if found:
            series, source = found, candidate.name
            break
    if not series:
        power = [(r["t"], r["power_total_w"]) for r in window.records if r.get("power_total_w") is not None]
        series = [integrate(power)] if len(power) >= 2 else []
    covered = [c for c in (between(cumulative, window.t0, window.t1) for cumulative in series) if c is not None]
    if not covered:
        return None, None, 0.0
    return sum(j for j, _ in covered), source, max(s for _, s in covered)


def integrate(power: Series) -> Series:
    cumulative, total_j = [(power[0][0], 0.0)], 0.0
    for (ta, pa), (tb, pb) in zip(power, power[1:]):
        total_j += (pa + pb) / 2.0 * (tb - ta)
        cumulative.append((tb, total_j))
    return cumulative


def between(cumulative: Series, t0, t1) -> Optional[Tuple[float, float]]:
    """(joules, seconds) accumulated between t0 and t1, clamped to the measured span;
    None when the window and the measurements do not overlap."""
    first, last = cumulative[0][0], cumulative[-1][0]
    a = first if t0 is None else max(t0, first)
    b = last if t1 is None else min(t1, last)
    if b <= a:
        return None
    return _at(cumulative, b) - _at(cumulative, a), b - a


def _at(cumulative: Series, t: float) -> float:
    for (ta, ea), (tb, eb) in zip(cumulative, cumulative[1:]):
        if ta <= t <= tb:
            return ea if tb == ta else ea + (eb - ea) * (t - ta) / (tb - ta)
    return cumulative[-1][1]
