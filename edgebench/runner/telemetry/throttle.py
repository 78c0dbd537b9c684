"""Was the device throttled during a window? Each source that can tell says why (its `throttle`
hook: cpufreq's frequency ratio and capped policies, thermal's temperature limit); this judges
them together.

- `throttled` / `throttle_reasons`: True with the reasons when any source saw throttling, False
  with [] when the sources that could tell saw none, None for both when no source could tell.
  Reasons are sorted by name so the list does not depend on the order sources are listed in.
- Row column `throttled`: whether any repetition's window was throttled.
"""

from __future__ import annotations

from .base import SOURCES, summary
from .columns import Column, any_of


@summary("throttle", order=35, columns=[Column("throttled", any_of("throttled"))])
def summarize(window) -> dict:
    verdicts = [source.throttle(window) for source in SOURCES.values() if source.throttle is not None]
    judged = [reasons for reasons in verdicts if reasons is not None]
    reasons = sorted({reason for found in judged for reason in found})
    return {
        "throttled": bool(reasons) if judged else None,
        "throttle_reasons": reasons if judged else None,
    }
