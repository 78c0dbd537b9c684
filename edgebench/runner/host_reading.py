"""What else used the machine during a sample (the `host` reading, by which sweep/disturbance.py judges whether
a measurement was disturbed): hypervisor steal time, run-queue waits and the load average.

Read with every sample whether telemetry is on or not, because the A/B gate judges each round by them
(a round measured while the host stole CPU time or other work crowded the cores is repeated, not trusted).
Steal is the share of all CPU time between two readings that the hypervisor gave to another guest
(`steal` in /proc/stat's first line, Linux 2.6.11+); on a VM that time is charged to the benchmark too, so
it cannot be subtracted, only noticed.

`cpu_wait_pct` is what other runnable tasks cost the benchmark during the timed repetition itself: of the
repetition's wall time, the share its most-delayed thread spent runnable but waiting for a CPU (the run-queue
delay in /proc/PID/task/TID/schedstat, kept in nanoseconds, so it moves within a repetition of a few ms,
where the 1-minute load average cannot). The engine marks the repetition's start and end (`mark`).
"""

from __future__ import annotations

import os
import time
from typing import Dict, Optional, Tuple

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


def run_queue_waits(root: str, pid: int) -> Optional[Dict[str, int]]:
    """Thread id -> nanoseconds it has waited on a run queue, for every thread of `pid`; None where the kernel
    keeps no schedstat (or the process is gone)."""
    base = os.path.join(root, "proc", str(pid), "task")
    try:
        tids = os.listdir(base)
    except OSError:
        return None
    found = {}
    for tid in tids:
        try:
            with open(os.path.join(base, tid, "schedstat")) as f:
                found[tid] = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return found or None


def cpu_wait_pct(before: Tuple[int, Optional[Dict[str, int]]], after: Tuple[int, Optional[Dict[str, int]]]):
    """The largest share of the wall time between two snapshots (monotonic ns, waits) that one thread
    waited for a CPU, in %, at most 100 (a wait is booked when it ends, so one begun earlier may show)."""
    (t0, waits0), (t1, waits1) = before, after
    if waits0 is None or waits1 is None or t1 <= t0:
        return None
    # a thread started within the window waited all its waits there
    worst = max(wait - waits0.get(tid, 0) for tid, wait in waits1.items())
    return round(min(100.0, 100.0 * max(0, worst) / (t1 - t0)), 3)


class HostReading(object):
    """Call `mark()` where the engine marks a repetition's start and end, and `reading()` at every sample:
    steal % since the previous reading (or since it was made), the run-queue wait of the engine's threads
    during the repetition (since the previous reading where no marks came), the 1-minute load average and the
    CPU count the load is to be held against. `pid` gives the engine's process (None: this one)."""

    def __init__(self, root: str = "/", pid=lambda: None):
        self.root, self.pid = root, pid
        self.last = cpu_ticks(root)
        self.marks = []
        self.last_waits = self.waits()

    def waits(self) -> Tuple[int, Optional[Dict[str, int]]]:
        return time.monotonic_ns(), run_queue_waits(self.root, self.pid() or os.getpid())

    def mark(self) -> None:
        self.marks = (self.marks + [self.waits()])[-2:]

    def reading(self) -> dict:
        now = cpu_ticks(self.root)
        steal = None
        if now is not None and self.last is not None and now[1] > self.last[1]:
            steal = round(100.0 * (now[0] - self.last[0]) / (now[1] - self.last[1]), 3)
        self.last = now
        window = self.marks if len(self.marks) == 2 else [self.last_waits, self.waits()]
        self.marks, self.last_waits = [], self.waits()
        return {"steal_pct": steal, "cpu_wait_pct": cpu_wait_pct(*window), "load1": load1(self.root),
                "n_cpus": os.cpu_count()}
