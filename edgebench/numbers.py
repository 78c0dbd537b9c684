"""Small numeric helpers shared by the results tables and the gate's statistics."""

from __future__ import annotations

import math


def quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, Hyndman-Fan type 7);
    `ordered` is sorted and not empty, q in [0, 1]."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
