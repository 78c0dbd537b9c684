"""When an A/B round was disturbed: the hypervisor stole CPU time, or other work crowded the device.

Each sample carries the runner's `host` reading (runner/interference.py). A round whose samples show
more steal than `max_steal_pct`, or a 1-minute load average above `max_load` (default: twice the device's
CPU count, so the benchmark's own threads never trip it) is flagged; `ab` measures it again, up to its
repeat limit. A round still disturbed after that is kept and stays flagged: the disturbance has lasted,
and A and B of one round met it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from edgebench.results.records import Sample

DEFAULT_MAX_STEAL_PCT = 5.0
LOAD_PER_CPU = 2.0


@dataclass(frozen=True)
class Disturbance:
    max_steal_pct: float = DEFAULT_MAX_STEAL_PCT
    max_load: float | None = None  # None: LOAD_PER_CPU x the CPUs the runner saw

    def __post_init__(self):
        if not self.max_steal_pct >= 0 or (self.max_load is not None and not self.max_load >= 0):
            raise ValueError("the steal and load limits must be numbers >= 0")

    def why(self, samples: Iterable[Sample]) -> str | None:
        """Why a round's samples are not to be trusted, or None when nothing disturbed them."""
        for sample in samples:
            host = sample.host or {}
            steal, load, cpus = host.get("steal_pct"), host.get("load1"), host.get("n_cpus")
            if steal is not None and steal > self.max_steal_pct:
                return f"steal {steal:.1f}% > {self.max_steal_pct:g}%"
            limit = self.max_load if self.max_load is not None else (LOAD_PER_CPU * cpus if cpus else None)
            if load is not None and limit is not None and load > limit:
                return f"load {load:.2f} > {limit:g}"
        return None
