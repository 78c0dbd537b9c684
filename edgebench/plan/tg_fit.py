"""Generation speed from stored runs: the two rates a token's time is made of, and how far they reach.

A generated token costs its reads (weights, KV, state) and its fixed work (per layer, per state element,
per cache cell: speed.token_cost), each in bytes. Its time is reads / bandwidth + fixed work / fixed rate.
A large model's run is bound by its reads, so it measures the bandwidth; a tiny model's run, whose few
MB of weights sit in the CPU's caches and whose per-layer work dwarfs them, measures the fixed rate and
says next to nothing about the memory. Taking each run's t/s x its whole cost as "the bandwidth" (one
rate for both) lets a handful of tiny runs claim a bandwidth many times the memory's.

So the two rates are fitted together, least squares on relative error, and each run weighs on the rate
its own cost is made of. Where no run was bound by reads of the size asked about, the bandwidth is an
extrapolation and the plan gives a range, not a number.
"""

from __future__ import annotations

from dataclasses import dataclass

# a bandwidth measured on reads this large comes from memory, not from a cache: it holds for larger
# models too (the largest CPU caches hold some hundred MiB)
MEMORY_BOUND_READS = 256 * (1 << 20)
# below that, a bandwidth holds up to this many times the reads of the run that measured it
EXTRAPOLATION = 4.0
# how much slower memory can be than the caches a small run read from: the low end of a range
CACHE_GAP = 8.0


@dataclass(frozen=True)
class TgPoint:
    """One run's generation cell that calibrates a device: what a token cost it, and how fast it went."""

    run: str
    model: str
    test: str
    ts: float
    reads: float      # bytes a token read (repacked weights at their share)
    fixed: float      # the token's fixed work, in bytes at the fixed rate
    threads: int | None = None
    started: str | None = None

    @property
    def bytes_bound(self) -> bool:
        return self.reads >= self.fixed

    @property
    def informs(self) -> str:
        return "bandwidth" if self.bytes_bound else "fixed work"

    @property
    def reads_share(self) -> float:
        return self.reads / (self.reads + self.fixed)


@dataclass(frozen=True)
class TgFit:
    bandwidth: float          # bytes/s of reads
    fixed_rate: float         # bytes/s of fixed work
    points: tuple[TgPoint, ...]
    separate: bool            # both rates were measured apart (else one rate serves both)

    @property
    def measured_reads(self) -> float:
        """The largest reads per token of a run bound by its reads (0: no such run)."""
        return max((p.reads for p in self.points if p.bytes_bound), default=0.0)

    def covers(self, reads: float, fixed: float) -> bool:
        """Whether the runs measured a bandwidth for a token of this cost, rather than one read from a cache."""
        if reads <= fixed:
            return True  # its fixed work decides: measured, or at the bandwidth of runs as large
        measured = self.measured_reads
        return measured >= MEMORY_BOUND_READS or reads <= EXTRAPOLATION * measured

    def ts(self, reads: float, fixed: float, slower: float = 1.0) -> float:
        return 1.0 / (reads * slower / self.bandwidth + fixed / self.fixed_rate)

    def uncovered_reason(self, reads: float) -> str:
        measured = self.measured_reads
        if not measured:
            return (f"no stored run was bound by its reads (each was a small model whose fixed work decided its "
                    f"speed), so the bandwidth for {_mib(reads)} a token is not measured")
        return (f"the largest run bound by its reads read {_mib(measured)} a token, "
                f"{reads / measured:.0f}x less than {_mib(reads)}")


def fit_tg(points: list[TgPoint]) -> TgFit | None:
    """Both rates where runs of both kinds are there and agree with the model, else one rate for both."""
    if not points:
        return None
    large = [p for p in points if p.bytes_bound]
    if large and len(large) < len(points):
        both = _two_rates(points) or _in_turn(points)
        if both is not None:
            return TgFit(1.0 / both[0], 1.0 / both[1], tuple(points), True)
        points_for_rate = large  # the small runs cannot speak for memory: they would swamp it
    else:
        points_for_rate = points
    rate = _one_rate(points_for_rate)
    return TgFit(rate, rate, tuple(points), False)


def _two_rates(points: list[TgPoint]) -> tuple[float, float] | None:
    """Seconds per byte of reads and of fixed work: least squares of each run's predicted / measured
    time - 1, so that a run counts by its relative error whatever its speed."""
    u = [p.reads * p.ts for p in points]
    v = [p.fixed * p.ts for p in points]
    suu, svv, suv = sum(a * a for a in u), sum(b * b for b in v), sum(a * b for a, b in zip(u, v))
    su, sv = sum(u), sum(v)
    det = suu * svv - suv * suv
    if det <= 1e-9 * suu * svv:
        return None  # the runs' costs are all alike: no way to tell the two rates apart
    x, y = (su * svv - sv * suv) / det, (sv * suu - su * suv) / det
    return (x, y) if x > 0 and y > 0 else None


def _in_turn(points: list[TgPoint]) -> tuple[float, float] | None:
    """Where no two positive rates fit all runs (a tiny model read its weights from a cache, far faster
    than the large runs read theirs from memory): the fixed rate from the small runs alone, their reads
    taken as free, then the bandwidth from the large runs, less their fixed work at that rate."""
    small = [p.fixed * p.ts for p in points if not p.bytes_bound]
    y = sum(small) / sum(v * v for v in small)
    large = [(p.reads * p.ts, p.fixed * p.ts) for p in points if p.bytes_bound]
    x = sum(u * (1 - y * v) for u, v in large) / sum(u * u for u, _ in large)
    return (x, y) if x > 0 else None


def _one_rate(points: list[TgPoint]) -> float:
    """Bytes/s for reads and fixed work alike: least squares of the relative error, as above."""
    c = [(p.reads + p.fixed) * p.ts for p in points]
    return sum(x * x for x in c) / sum(c)


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n < (1 << 30) else f"{n / (1 << 30):.2f} GiB"
