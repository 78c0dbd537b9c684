"""Row columns from window summaries: how a key of each sample's window reduces over a cell's
timed repetitions into one field of its row.

Summaries declare their columns (base.Summary.columns); the controller's results/aggregate.py
reads every declared column in order and appends them to a row. Pure: windows in, a value out.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence


class Windows(object):
    """One cell's sample windows, with what a column may need beside them: the tokens the samples
    processed, and the cell's own record (e.g. the runner's `peak_rss_kb` from its `done` event)."""

    def __init__(self, windows: Sequence[dict], n_tokens: int, cell: Optional[dict] = None):
        self.windows, self.n_tokens, self.cell = list(windows), n_tokens, cell or {}

    def values(self, key: str) -> List:
        """The key's value in every window that has one (None means not measured there)."""
        return [w[key] for w in self.windows if w.get(key) is not None]


class Column(object):
    """Row field `name`, computed by `reduce(windows)`; None when nothing was measured."""

    def __init__(self, name: str, reduce: Callable[[Windows], object]):
        self.name, self.reduce = name, reduce


def _over(key: str, combine):
    def reduce(windows: Windows):
        values = windows.values(key)
        return combine(values) if values else None
    return reduce


def largest(key: str):
    return _over(key, max)


def smallest(key: str):
    return _over(key, min)


def any_of(key: str):
    return _over(key, any)


def total(key: str):
    return _over(key, sum)


def per_token(key: str):
    """The key's total over the windows divided by the tokens of all samples (J/token from joules)."""
    summed = total(key)

    def reduce(windows: Windows):
        value = summed(windows)
        return value / windows.n_tokens if value is not None and windows.n_tokens else None
    return reduce
