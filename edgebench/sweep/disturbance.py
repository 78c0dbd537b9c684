"""When an A/B round was disturbed: the hypervisor stole CPU time, or other work crowded the device.

Each sample carries the runner's `host` reading (runner/host_reading.py), taken over that very repetition.
A round whose samples show more steal than `max_steal_pct`, or a benchmark thread that waited for a CPU more
than `max_cpu_wait_pct` of the repetition (other runnable tasks held the cores), is flagged; `ab` waits
`cool_off_s` for the burst to pass and measures it again, up to its repeat limit. A round still disturbed
after that is kept and stays flagged: the disturbance has lasted, and A and B of one round met it alike.

The 1-minute load average is no default signal: it cannot move within a round of a few milliseconds (a
round at 100 t/s against 19,500 showed a load of 2.2-2.6 on 2 CPUs), and it lags a burst by a minute.
`max_load` still judges it where asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from edgebench.results.records import Sample

DEFAULT_MAX_STEAL_PCT = 5.0
# a benchmark thread kept off the CPU for a tenth of the repetition made it about that much slower: more than
# any threshold (measured here: sleep-engine rounds 22% slow showed a wait of 22-23%, the others 0-3%)
DEFAULT_MAX_CPU_WAIT_PCT = 10.0
DEFAULT_COOL_OFF_S = 5.0


@dataclass(frozen=True)
class Disturbance:
    max_steal_pct: float = DEFAULT_MAX_STEAL_PCT
    max_cpu_wait_pct: float = DEFAULT_MAX_CPU_WAIT_PCT
    max_load: float | None = None  # None: the load average is not judged
    cool_off_s: float = DEFAULT_COOL_OFF_S  # the wait before a disturbed round is measured again

    def __post_init__(self):
        limits = (self.max_steal_pct, self.max_cpu_wait_pct, self.cool_off_s,
                  0 if self.max_load is None else self.max_load)
        if not all(value >= 0 for value in limits):
            raise ValueError("the steal, CPU-wait and load limits and the cool-off must be numbers >= 0")

    def why(self, samples: Iterable[Sample]) -> str | None:
        """Why a round's samples are not to be trusted, or None when nothing disturbed them."""
        for sample in samples:
            host = sample.host or {}
            steal, wait, load = host.get("steal_pct"), host.get("cpu_wait_pct"), host.get("load1")
            if steal is not None and steal > self.max_steal_pct:
                return f"steal {steal:.1f}% > {self.max_steal_pct:g}%"
            if wait is not None and wait > self.max_cpu_wait_pct:
                return f"waited for a CPU {wait:.0f}% of the repetition > {self.max_cpu_wait_pct:g}%"
            if load is not None and self.max_load is not None and load > self.max_load:
                return f"load {load:.2f} > {self.max_load:g}"
        return None
