"""The gate's threshold vocabulary: the keys a threshold may name, how a limit is written, and which
key applies to a comparison.

A profile's `thresholds:` and the command line's `--threshold` both read through here, so they accept
exactly the same keys and limits, and a key that would never apply (`tgg`) is an error, not ignored.
"""

from __future__ import annotations

import difflib
import re

from edgebench.compare.metrics import METRICS
from edgebench.runner.testspec import KINDS, parse_test

_NUMBER = r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*"
_PERCENT = re.compile(_NUMBER + "%" + r"\s*")
_FRACTION = re.compile(_NUMBER)
KEYS = (f"a metric ({', '.join(METRICS)}), a test kind ({', '.join(KINDS)}) "
        f"or a test such as tg128 or pp512+tg128@d4096")
OPTION_FORMAT = "KEY=PERCENT[,KEY=PERCENT...] such as tg=3%,peak_rss=2%"


class ThresholdError(ValueError):
    """A threshold key or limit that is not in the vocabulary; the message says what is."""


def threshold_key(key: object) -> str:
    """A key as thresholds are kept: a metric, a test kind, or a test's canonical name."""
    if isinstance(key, str):
        key = key.strip()
        if key in METRICS or key in KINDS:
            return key
        try:
            return parse_test(key).name
        except ValueError:
            pass
    close = difflib.get_close_matches(str(key).lower(), [*METRICS, *KINDS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ThresholdError(f"unknown threshold key {key!r}{hint}; a threshold names {KEYS}")


def threshold_limit(value: str | float) -> float:
    """The smallest effect that counts, as a fraction: `'3%'` is 0.03, and so is a bare 0.03."""
    if isinstance(value, str) and (percent := _PERCENT.fullmatch(value)):
        value = float(percent[1]) / 100
    else:
        value = _bare_fraction(value)
    if not value > 0:
        raise ThresholdError("a threshold must be greater than 0")
    return value


def _bare_fraction(value: str | float) -> float:
    if isinstance(value, str):
        match = _FRACTION.fullmatch(value)
        if not match:
            raise ThresholdError(f"expected a percentage such as '3%' (or a fraction such as 0.03), got {value!r}")
        value = float(match[1])
    if value >= 1:
        # 3 for 3% is the likely slip, and it would silently mean 300%
        raise ThresholdError(f"a bare number is a fraction (0.03 means 3%); write '{value:g}%' for percent")
    return value


def parse_threshold_option(text: str) -> dict[str, float]:
    """`--threshold tg=3%,pp=5%,peak_rss=2%`."""
    found = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ThresholdError(f"--threshold takes {OPTION_FORMAT}; got {part!r}")
        try:
            found[threshold_key(key)] = threshold_limit(value)
        except ThresholdError as exc:
            raise ThresholdError(f"--threshold {part}: {exc}") from None
    return found


def threshold_for(thresholds: dict, metric_name: str, test_name: str, kind: str) -> float:
    """For t/s the most specific key wins: the test (`tg128`), then its kind (`tg`, `pp`, `pp+tg`),
    then `ts`;
    other metrics go by their own name (`peak_rss`, `ttft`, `j_per_token`)."""
    keys = (test_name, kind, "ts") if metric_name == "ts" else (metric_name,)
    for key in keys:
        if key in thresholds:
            return thresholds[key]
    return METRICS[metric_name].default_threshold
