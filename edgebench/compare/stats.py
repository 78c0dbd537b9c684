"""Statistics of the regression gate: is a candidate's metric worse, better or the same as the base's?

The default rule (see ``decide``): one-sided exact Mann-Whitney U test p <= ``ALPHA`` AND a Hodges-Lehmann
shift of log(metric) of at least ``log(1 + threshold)`` and of twice the runs' own noise. The ratio
candidate/base is reported with a 95% percentile-bootstrap confidence interval. Where the samples are too few
for the test to ever reach alpha, where the shift is within the noise, or where the interval still allows a
regression of threshold size, the verdict is "inconclusive"; "same" needs the interval within the threshold
both ways, and one that reaches only a gain of threshold size is "not worse".

The test and the interval are scipy.stats' (`mannwhitneyu`, `bootstrap`) where scipy has them: the exact
no-ties distribution, the tie-corrected normal approximation, the percentile bootstrap. One part stays here:
the exact p with ties, the share of all C(n+m, n) splits of the pooled values, which scipy's `exact` does not
give (it assumes no ties) and its permutation method reaches only by visiting every split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.01
BOOTSTRAP_ROUNDS = 2000
# the exact null distribution is used up to this many values in both samples together (n + m); above it,
# the normal approximation with tie and continuity correction (at n + m > 50 the two differ by ~0.001)
EXACT_MAX_TOTAL = 50
# a shift of log(metric) between two runs counts only beyond this many times the runs' own spread (the sd of
# a run's log values): see decide
NOISE_MULTIPLE = 2.0
# slack for comparing a shift of logs with log(1 + threshold): a value scaled by exactly the threshold counts
_EPS = 1e-12


def _floats(values: Sequence[float], name: str) -> list[float]:
    out = [float(v) for v in values]
    if not out:
        raise ValueError(f"{name} is empty: need at least one sample")
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{name} has a non-finite value ({bad[0]!r}): every sample must be a finite number")
    return out


def _positive(values: Sequence[float], name: str) -> list[float]:
    out = _floats(values, name)
    bad = [v for v in out if not v > 0]
    if bad:
        raise ValueError(f"{name} has a non-positive value ({bad[0]!r}): the gate compares log(metric), "
                         "so every sample must be > 0")
    return out


def _doubled_midranks(x: list[float], y: list[float]) -> tuple[list[int], list[int], list[int]]:
    """Twice the mid-rank of every value of x + y (integers), the x part's, and the sizes of the tie groups."""
    pooled = sorted(range(len(x) + len(y)), key=lambda i: x[i] if i < len(x) else y[i - len(x)])
    values = [x[i] if i < len(x) else y[i - len(x)] for i in pooled]
    ranks2 = [0] * len(pooled)
    ties = []
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] == values[start]:
            end += 1
        r2 = (start + 1) + (end + 1)  # ranks start+1 .. end+1: doubled mean is their sum
        for k in range(start, end + 1):
            ranks2[pooled[k]] = r2
        ties.append(end - start + 1)
        start = end + 1
    return ranks2, ranks2[:len(x)], ties


def _exact_greater(x: list[float], y: list[float]) -> float:
    """P(U >= U_observed) over all C(n+m, n) equally likely splits of the pooled values (the permutation
    distribution; with ties it is conditional on them, i.e. what enumerating every split gives)."""
    ranks2, x_ranks2, _ = _doubled_midranks(x, y)
    n = len(x)
    observed = sum(x_ranks2)
    splits = math.comb(len(ranks2), n)
    # ways[k] is a polynomial in q packed into one integer, `bits` bits per coefficient (whole bytes, room for
    # the largest count): the coefficient of q**s counts the k-element subsets of the values seen so far
    # whose doubled ranks sum to s
    width = splits.bit_length() // 8 + 1
    bits = 8 * width
    ways = [0] * (n + 1)
    ways[0] = 1
    for seen, r2 in enumerate(ranks2):
        for k in range(min(seen + 1, n), 0, -1):
            if ways[k - 1]:
                ways[k] += ways[k - 1] << (bits * r2)
    tail = ways[n] >> (bits * observed)
    raw = tail.to_bytes((tail.bit_length() + 7) // 8 + width, "little")
    count = sum(int.from_bytes(raw[i:i + width], "little") for i in range(0, len(raw), width))
    return min(1.0, count / splits)


def _normal_greater(x: list[float], y: list[float]) -> float:
    """scipy's normal approximation of P(U >= U_observed): tie-corrected variance, continuity correction."""
    if len(set(x) | set(y)) == 1:  # every value equal: no evidence either way
        return 1.0
    return float(scipy_stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic").pvalue)


def mann_whitney_greater(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value for H1: values in x tend to be greater than values in y.

    U counts ties one half (as scipy does). Up to ``EXACT_MAX_TOTAL`` values in all, p is exact: the share of
    the C(n+m, n) splits of the pooled values whose U is at least the observed one. Without ties this equals
    scipy's ``method='exact'``; with ties scipy uses the no-ties distribution at floor(U), which differs, while
    this is the true permutation p. Above the cap: normal approximation with tie and continuity correction
    (scipy's ``method='asymptotic'``).
    """
    xs, ys = _floats(x, "x"), _floats(y, "y")
    if len(xs) + len(ys) > EXACT_MAX_TOTAL:
        return _normal_greater(xs, ys)
    if len(set(xs) | set(ys)) == len(xs) + len(ys):
        return float(scipy_stats.mannwhitneyu(xs, ys, alternative="greater", method="exact").pvalue)
    return _exact_greater(xs, ys)


def min_one_sided_p(n: int, m: int) -> float:
    """1 / C(n+m, n): the smallest one-sided p the exact test can give with n and m samples."""
    if n < 1 or m < 1:
        raise ValueError(f"need at least one sample per side, got n={n}, m={m}")
    return 1 / math.comb(n + m, n)


def hodges_lehmann(x: Sequence[float], y: Sequence[float]) -> float:
    """Hodges-Lehmann shift of y relative to x: the median of all pairwise differences y_j - x_i."""
    if not x or not y:
        raise ValueError("hodges_lehmann needs at least one value on each side")
    diffs = sorted([b - a for a in x for b in y])
    mid = len(diffs) // 2
    return diffs[mid] if len(diffs) % 2 else (diffs[mid - 1] + diffs[mid]) / 2


def bootstrap_ci(x: Sequence[float], y: Sequence[float], statistic: Callable[[list, list], float],
                 rounds: int = BOOTSTRAP_ROUNDS, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap (scipy.stats.bootstrap): resample x and y independently with replacement
    (numpy's generator seeded with `seed`), return the (lo, hi) quantiles of statistic(x*, y*)."""
    if not x or not y:
        raise ValueError("bootstrap_ci needs at least one value on each side")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    return _percentile_bootstrap(np.asarray(x, float), np.asarray(y, float),
                                 lambda a, b: statistic(list(a), list(b)), False, rounds, level, seed)


def _hodges_lehmann_batched(x, y, axis=-1):
    """hodges_lehmann over a batch of resamples at once (scipy's vectorized statistic)."""
    x, y = np.moveaxis(np.asarray(x), axis, -1), np.moveaxis(np.asarray(y), axis, -1)
    diffs = y[..., None, :] - x[..., :, None]
    return np.median(diffs.reshape(*diffs.shape[:-2], -1), axis=-1)


def _percentile_bootstrap(x, y, statistic, vectorized: bool, rounds: int, level: float, seed: int):
    if len(set(x.tolist()) | set(y.tolist())) == 1 or (len(x) == 1 and len(y) == 1):
        value = float(statistic(x, y))  # nothing to resample: the interval is the value
        return value, value
    options = dict(vectorized=vectorized, method="percentile", n_resamples=rounds, confidence_level=level,
                   rng=np.random.default_rng(seed))
    # one value resamples to itself: scipy takes samples of two or more, so only the other side is drawn
    if len(x) == 1:
        found = scipy_stats.bootstrap((y,), lambda b, axis=-1: statistic(x, b, axis=axis) if vectorized
                                      else statistic(x, b), **options).confidence_interval
    elif len(y) == 1:
        found = scipy_stats.bootstrap((x,), lambda a, axis=-1: statistic(a, y, axis=axis) if vectorized
                                      else statistic(a, y), **options).confidence_interval
    else:
        found = scipy_stats.bootstrap((x, y), statistic, paired=False, **options).confidence_interval
    return float(found.low), float(found.high)


@dataclass(frozen=True)
class Decision:
    # "improved" | "same" | "not worse" | "regressed" | "inconclusive" (paired, while rounds remain: "unknown")
    verdict: str
    ratio: float  # candidate / base, as exp(Hodges-Lehmann shift of log values); > 1 means the metric grew
    ci_low: float  # 95% bootstrap CI of that ratio
    ci_high: float
    p_value: float  # the one-sided p in the direction of the observed change (worse or better)
    n_base: int
    n_cand: int
    reason: str  # one short human sentence
    method: str = "unpaired"  # "unpaired" (compare: Mann-Whitney) or "paired" (ab: signed-rank per round)
    rounds: int | None = None  # paired: the rounds judged
    # paired: the smallest change (a fraction) the measured noise lets the round budget detect with 80% power
    detectable: float | None = None
    # paired: the sd of the per-round log ratio; unpaired: the larger run's sd of log values; as a fraction
    noise: float | None = None


def _change(ratio: float, worse: bool) -> str:
    """The change of the metric from base to candidate in words, e.g. "9.1% lower (worse)"."""
    return f"{abs(ratio - 1) * 100:.1f}% {'higher' if ratio > 1 else 'lower'} ({'worse' if worse else 'better'})"


def run_noise(log_values: Sequence[float]) -> float:
    """The spread of one run's log values: the median absolute deviation scaled to a standard deviation, so
    one stray repetition of a quiet run does not hide a real change (0 for a single value)."""
    x = np.asarray(log_values, dtype=float)
    return 1.4826 * float(np.median(np.abs(x - np.median(x)))) if len(x) > 1 else 0.0


def decide(base: Sequence[float], cand: Sequence[float], higher_is_better: bool, threshold: float,
           alpha: float = ALPHA, seed: int = 0) -> Decision:
    """Verdict for one cell and metric: "improved", "same", "not worse", "regressed" or "inconclusive".

    Regressed: the one-sided exact Mann-Whitney p toward worse is <= alpha AND the Hodges-Lehmann shift of
    log(metric) is at least log(1 + threshold) toward worse, AND at least NOISE_MULTIPLE times the larger
    run's own spread (run_noise of its log values): the two sides are separate runs, and a loaded device moves a whole
    run by about as much as it spreads the samples within one, an offset no test of the samples can tell from
    a change. Improved: the same toward better. A significant shift inside that noise is inconclusive. Then
    by the 95% bootstrap CI of the ratio: inconclusive if it reaches a change toward worse of threshold size
    (more runs would settle it), else "same" if it stays within the threshold toward better too, else "not
    worse". Too few samples for the exact test to ever reach alpha: "inconclusive".
    """
    base_v = _positive(base, "base")
    cand_v = _positive(cand, "candidate")
    if not threshold >= 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a fraction >= 0 (e.g. 0.03), got {threshold!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    n, m = len(base_v), len(cand_v)
    log_base = [math.log(v) for v in base_v]
    log_cand = [math.log(v) for v in cand_v]
    shift = hodges_lehmann(log_base, log_cand)
    lo, hi = _percentile_bootstrap(np.asarray(log_base), np.asarray(log_cand), _hodges_lehmann_batched, True,
                                   BOOTSTRAP_ROUNDS, 0.95, seed)
    ratio, ci_low, ci_high = math.exp(shift), math.exp(lo), math.exp(hi)
    p_up = mann_whitney_greater(cand_v, base_v)  # the candidate's values are greater
    p_down = mann_whitney_greater(base_v, cand_v)
    p_worse, p_better = (p_down, p_up) if higher_is_better else (p_up, p_down)
    worse_shift = -shift if higher_is_better else shift  # > 0: the candidate is worse
    worst_in_ci = -lo if higher_is_better else hi  # the worse end of the CI, as a worse shift
    best_in_ci = hi if higher_is_better else -lo  # the better end, as a better shift
    delta = math.log1p(threshold)
    noise = max(run_noise(log_base), run_noise(log_cand))
    p_value = p_worse if worse_shift >= 0 else p_better
    thr = f"{threshold * 100:g}%"
    ci = f"95% CI of the ratio {ci_low:.3f}-{ci_high:.3f}"
    sizes = f"n={n} per side" if n == m else f"n={n} base, {m} candidate"

    def result(verdict: str, reason: str) -> Decision:
        return Decision(verdict, ratio, ci_low, ci_high, p_value, n, m, reason, noise=math.expm1(noise))

    if min_one_sided_p(n, m) > alpha:
        return result("inconclusive", f"{sizes}: the exact test cannot reach p <= {alpha:g} "
                                      f"(smallest possible p {min_one_sided_p(n, m):.3g}); add runs")
    significant = (p_worse <= alpha and worse_shift >= delta - _EPS) or (p_better <= alpha
                                                                          and -worse_shift >= delta - _EPS)
    if significant and abs(shift) < NOISE_MULTIPLE * noise:
        return result("inconclusive", f"{_change(ratio, worse_shift > 0)}, p={p_value:.2g}, but within "
                                      f"{NOISE_MULTIPLE:g}x the runs' own noise ({math.expm1(noise) * 100:.1f}% "
                                      f"sd): a run-to-run offset that size is likely; measure on a quiet "
                                      f"device, or interleave with `edgebench ab`")
    if significant:
        verdict = "regressed" if worse_shift > 0 else "improved"
        return result(verdict, f"{_change(ratio, worse_shift > 0)}, p={p_value:.2g} <= {alpha:g} and beyond the "
                               f"{thr} threshold ({ci})")
    if worst_in_ci >= delta - _EPS:
        return result("inconclusive", f"a change {thr} or more worse is not ruled out "
                                      f"({ci}, p={p_value:.2g}); more runs would settle it")
    if best_in_ci >= delta - _EPS:
        return result("not worse", f"a change {thr} or more worse is ruled out, one {thr} or more better is "
                                   f"not ({ci}, p={p_value:.2g})")
    if min(p_worse, p_better) <= alpha:
        return result("same", f"significant (p={min(p_worse, p_better):.2g}) but {_change(ratio, worse_shift > 0)} "
                              f"is within the {thr} threshold")
    return result("same", f"no change beyond the {thr} threshold either way ({ci}, p={p_value:.2g})")


__all__ = ["ALPHA", "BOOTSTRAP_ROUNDS", "EXACT_MAX_TOTAL", "NOISE_MULTIPLE", "Decision", "bootstrap_ci", "decide",
           "hodges_lehmann", "mann_whitney_greater", "min_one_sided_p", "run_noise"]
