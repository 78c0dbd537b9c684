"""The background sampler: discovers sources once, then reads them every tick.

Records are flat-ish JSON-serialisable dicts (keys listed in the package
docstring): `t` (time.monotonic, comparable with the engines' window bounds),
`ts` (wall clock), then whatever the available sources read this tick. A source
that is unavailable, or a file that fails this tick, leaves its keys out.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .base import SOURCES, Context, Reader, Unavailable
from .settings import PROFILE, Choice, Flag, ListOf, Number, Setting, Text, Unique

# the sampler's own settings; the sources declare theirs (see base.register)
SETTINGS = [
    Setting("enabled", Flag(), True, doc="sample telemetry while a cell runs", scope=PROFILE),
    Setting("interval_s", Number(above=0), 0.5, doc="seconds between two readings", scope=PROFILE),
    Setting("sources", ListOf(Choice(SOURCES), "a non-empty list of source names", nonempty=True,
                              unique=Unique("source")), None,
            doc="the sources to read (default: all); one left out is never read, not even for the cool-down"),
    Setting("root", Text(), "/",
            doc="where the device's /sys and /proc are seen from (a chroot or container may differ)"),
]


class Sampler(object):
    """`settings`: the sources' device settings by name (Context checks the names)."""

    def __init__(self, root: str = "/", interval_s: float = 1.0, *, pid=None,
                 on_record: Optional[Callable[[dict], None]] = None, sources=None,
                 max_records: Optional[int] = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, **settings):
        if interval_s <= 0:
            raise ValueError("interval_s must be positive, not %r" % (interval_s,))
        unknown = sorted(set(sources or ()) - set(SOURCES))
        if unknown:
            raise ValueError("unknown telemetry sources %s; known: %s" % (unknown, sorted(SOURCES)))
        self.interval_s = float(interval_s)
        self.on_record = on_record
        self.max_records = max_records
        self.errors = 0  # reader or callback exceptions swallowed to keep the thread alive
        self.cpu_s = self.wall_s = 0.0
        self._ctx = Context(root, pid, interval_s=self.interval_s, **settings)
        self._wanted = list(sources) if sources else list(SOURCES)
        self._clock, self._wall = clock, wall_clock
        # one lock for discovery, reading and appending: records stay in `t` order
        # and on_record is never called from two threads at once
        self._lock = threading.RLock()
        self._readers: Optional[List[Tuple[str, Reader]]] = None
        self._availability: Dict[str, str] = {}
        self._records: List[dict] = []
        self._times: List[float] = []
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # discovery -------------------------------------------------------------

    def _discover(self) -> List[Tuple[str, Reader]]:
        with self._lock:
            if self._readers is None:
                readers = []
                for name in self._wanted:
                    try:
                        readers.append((name, SOURCES[name](self._ctx)))
                        self._availability[name] = "ok"
                    except Unavailable as exc:
                        self._availability[name] = "unavailable: " + exc.reason
                    except Exception as exc:  # a bad override must not take the run down
                        self._availability[name] = "unavailable: error: %s: %s" % (type(exc).__name__, exc)
                self._readers = readers
            return self._readers

    def availability(self) -> Dict[str, str]:
        """Source name -> "ok" or "unavailable: <reason>" (runs discovery if not done yet)."""
        self._discover()
        return dict(self._availability)

    # reading ---------------------------------------------------------------

    def snapshot(self) -> dict:
        """Take, keep and publish one record now, whether or not the thread runs."""
        readers = self._discover()
        with self._lock:
            record = self._read(readers)
            self._keep(record)
            if self.on_record is not None:
                try:
                    self.on_record(record)
                except Exception:
                    self.errors += 1
            return record

    def _read(self, readers: List[Tuple[str, Reader]]) -> dict:
        record = {"t": self._clock(), "ts": self._wall()}
        for _name, reader in readers:
            try:
                fragment = reader.read()
            except Exception:
                self.errors += 1
                continue
            for key, value in fragment.items():
                if isinstance(value, dict) and isinstance(record.get(key), dict):
                    record[key].update(value)
                else:
                    record[key] = value
        total = _total_power(record.get("power_w"), [r for _n, r in readers])
        if total is not None:
            record["power_total_w"] = total
        return record

    def _keep(self, record: dict) -> None:
        self._records.append(record)
        self._times.append(record["t"])
        if self.max_records and len(self._records) > self.max_records * 1.1:
            # trim in chunks: deleting one from the front each tick is O(n) per tick
            excess = len(self._records) - self.max_records
            del self._records[:excess]
            del self._times[:excess]

    # the thread --------------------------------------------------------------

    def start(self) -> None:
        self._discover()
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="edgebench-telemetry", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            for _name, reader in self._readers or ():
                try:
                    reader.close()
                except Exception:
                    self.errors += 1

    def _run(self) -> None:
        due = started = time.monotonic()
        while not self._stop.is_set():
            try:
                self.snapshot()
            except Exception:
                self.errors += 1
            # what the sampler costs the benchmark: its own CPU time against the time it ran
            self.cpu_s, self.wall_s = time.thread_time(), time.monotonic() - started
            due += self.interval_s
            delay = due - time.monotonic()
            if delay < 0:
                # fell behind (slow storage, suspended phone): skip missed ticks, don't burst
                due, delay = time.monotonic(), 0.0
            if self._stop.wait(delay):
                break

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # queries -------------------------------------------------------------------

    @property
    def records(self) -> List[dict]:
        with self._lock:
            return list(self._records)

    def records_between(self, t0: float, t1: float, bracket: bool = True) -> List[dict]:
        """Records with t0 <= t <= t1, in time order.

        With `bracket` (the default) the last record before t0 and the first after
        t1 are included too when no record falls exactly on the bound: engines
        take their marks just outside the timed region, and counters and power
        integrals need a reading on each side of the window to cover all of it.
        """
        with self._lock:
            times, n = self._times, len(self._times)
            lo, hi = bisect.bisect_left(times, t0), bisect.bisect_right(times, t1)
            if bracket and lo > 0 and not (lo < n and times[lo] == t0):
                lo -= 1
            if bracket and hi < n and not (hi > 0 and times[hi - 1] == t1):
                hi += 1
            return self._records[lo:hi]


def _total_power(power: Optional[dict], readers: List[Reader]) -> Optional[float]:
    """Whole-device watts for this tick, or None.

    The best-ranked source whose whole-device rails were read wins; when no
    source declares such rails (e.g. Jetson AGX Orin, whose rails have no common
    input) the sum of all rails is the best available figure (a lower bound).
    """
    if not power:
        return None
    declared = sorted((r.total_rank, i, r.total_rails) for i, r in enumerate(readers) if r.total_rails)
    if not declared:
        return sum(power.values())
    for _rank, _i, rails in declared:
        present = [power[rail] for rail in rails if rail in power]
        if present:
            return sum(present)
    return None
