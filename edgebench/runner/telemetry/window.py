"""Summarise the telemetry records of one timed window (pure: records in, dict out).

The summary's keys come from the declared summaries (base.SUMMARIES), in their order: each
source says what it adds (memory.py, thermal.py, cpufreq.py), and throttle.py and energy.py
judge what several sources read together. A value with nothing to base it on is None, never 0.
"""

from __future__ import annotations

from typing import Optional, Sequence

from .base import SUMMARIES


class Window(object):
    """What a summary is given: the window's records in time order, the tokens it processed,
    its exact bounds `t0`/`t1` when known (None: the records' own span), and the device's
    `limits` (`max_temp_c`; `throttle_ratio` overrides cpufreq's), unset ones left out."""

    def __init__(self, records: Sequence[dict], n_tokens: Optional[int], t0: Optional[float] = None,
                 t1: Optional[float] = None, limits: Optional[dict] = None):
        self.records = sorted(records, key=lambda r: r["t"])
        self.n_tokens, self.t0, self.t1 = n_tokens, t0, t1
        self.limits = {key: value for key, value in (limits or {}).items() if value is not None}


def summarize_window(records: Sequence[dict], n_tokens: Optional[int], *, t0: Optional[float] = None,
                     t1: Optional[float] = None, **limits) -> dict:
    """One window's summary: `n_records` and `duration_s` (how many records and the time they
    span), then every declared summary's keys.

    `t0`/`t1`, when given, are the window's exact bounds: energy is then interpolated to them
    (assuming steady power between readings) instead of covering the bracketing records' whole span.
    """
    window = Window(records, n_tokens, t0, t1, limits)
    ordered = window.records
    summary = {
        "n_records": len(ordered),
        "duration_s": ordered[-1]["t"] - ordered[0]["t"] if ordered else None,
    }
    for part in SUMMARIES:
        if part.summarize is not None:
            summary.update(part.summarize(window))
    return summary
