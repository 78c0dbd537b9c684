"""What else used the machine during a sample: hypervisor steal time and the load average.

Read with every sample whether telemetry is on or not, because the A/B gate judges each round by them
(a round measured while the host stole CPU time or other work crowded the cores is repeated, not trusted).
Steal is the share of all CPU time between two readings that the hypervisor gave to another guest
(`steal` in /proc/stat's first line, Linux 2.6.11+); on a VM that time is charged to the benchmark too, so
it cannot be subtracted, only noticed.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

_STEAL_FIELD = 7  # user nice system idle iowait irq softirq steal guest guest_nice, 0-based after "cpu"


def cpu_ticks(root: str = "/") -> Optional[Tuple[int, int]]:
    """(steal, total) jiffies of all CPUs since boot, or None where /proc/stat has no steal column."""
    try:
        with open(os.path.join(root, "proc", "stat")) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 2 + _STEAL_FIELD:
        return None
    try:
        values = [int(v) for v in fields[1:]]
    except ValueError:
        return None
    # guest time is already counted in user and nice: adding it again would dilute the steal share
    return values[_STEAL_FIELD], sum(values[:_STEAL_FIELD + 1])


def load1(root: str = "/") -> Optional[float]:
    try:
        with open(os.path.join(root, "proc", "loadavg")) as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class Interference(object):
    """Call `reading()` at every sample: steal % since the previous call (or since it was made), the
    1-minute load average and the CPU count the load is to be held against."""

    def __init__(self, root: str = "/"):
        self.root = root
        self.last = cpu_ticks(root)

    def reading(self) -> dict:
        now = cpu_ticks(self.root)
        steal = None
        if now is not None and self.last is not None and now[1] > self.last[1]:
            steal = round(100.0 * (now[0] - self.last[0]) / (now[1] - self.last[1]), 3)
        self.last = now
        return {"steal_pct": steal, "load1": load1(self.root), "n_cpus": os.cpu_count()}
