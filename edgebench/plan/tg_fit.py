"""Generation speed from stored runs: the rate a token's cost goes at, and how far it reaches.

A generated token costs its reads (weights, KV, state) and its fixed work (per layer, per state element,
per cache cell: speed.token_cost), each in bytes. The fixed work's constants were fitted with the reads
at one rate, on 36 cells of six architectures (tests/perf/speed_constants.py), so one rate prices both.

Which runs can measure that rate: a run bound by its reads (a model of some hundred MB) can. A tiny
model's run cannot. Its few MB of weights sit in the CPU's caches, and its narrow layers cost less fixed
work than the per-layer constant, which holds for real widths. On this 2-core Xeon, tiny-qwen35's tg32
ran 3.2x faster than the rate of the quickstart's 0.8B run predicts for it. Fitting a second rate to
such runs made the 0.8B's fixed work nearly free: it predicted the README's 8-layer Qwen3.5-4B at -26%.
One rate from the 0.8B alone gives +10%.

So when a run bound by its reads is there, those runs alone set the rate, and small runs are only listed.
Where only small runs are there, they set it. Then the bandwidth for a model much larger than theirs is
an extrapolation, and the plan gives a range, not a number.
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
    def reads_share(self) -> float:
        return self.reads / (self.reads + self.fixed)


@dataclass(frozen=True)
class TgFit:
    bandwidth: float          # bytes/s, of reads and fixed work alike
    points: tuple[TgPoint, ...]
    used: tuple[TgPoint, ...]  # the points that set the rate

    @property
    def fixed_rate(self) -> float:
        return self.bandwidth

    @property
    def measured_reads(self) -> float:
        """The largest reads per token of a run bound by its reads (0: no such run)."""
        return max((p.reads for p in self.points if p.bytes_bound), default=0.0)

    def role(self, point: TgPoint) -> str:
        """What a point told this fit."""
        if point not in self.used:
            return "listed only: a small model, in the caches (a run bound by its reads sets the rate)"
        return "the rate" if point.bytes_bound else "the rate (small models only: a range beyond their size)"

    def covers(self, reads: float, fixed: float) -> bool:
        """Whether the runs measured a bandwidth for a token of this cost, rather than one read from a cache."""
        if reads <= fixed:
            return True  # its fixed work decides: measured, or at the bandwidth of runs as large
        measured = self.measured_reads
        return measured >= MEMORY_BOUND_READS or reads <= EXTRAPOLATION * measured

    def ts(self, reads: float, fixed: float, slower: float = 1.0) -> float:
        return 1.0 / ((reads * slower + fixed) / self.bandwidth)

    def uncovered_reason(self, reads: float) -> str:
        measured = self.measured_reads
        if not measured:
            return (f"no stored run was bound by its reads (each was a small model whose fixed work decided its "
                    f"speed), so the bandwidth for {_mib(reads)} a token is not measured")
        return (f"the largest run bound by its reads read {_mib(measured)} a token, "
                f"{reads / measured:.0f}x less than {_mib(reads)}")


def fit_tg(points: list[TgPoint]) -> TgFit | None:
    """One rate, from the runs bound by their reads where there are any, else from the small ones."""
    if not points:
        return None
    used = [p for p in points if p.bytes_bound] or points
    return TgFit(_one_rate(used), tuple(points), tuple(used))


def _one_rate(points: list[TgPoint]) -> float:
    """Bytes/s for reads and fixed work alike: least squares of each run's relative error, so that a run
    counts by its relative error whatever its speed."""
    c = [(p.reads + p.fixed) * p.ts for p in points]
    return sum(x * x for x in c) / sum(c)


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.0f} MiB" if n < (1 << 30) else f"{n / (1 << 30):.2f} GiB"
