"""Paired, sequential decisions for interleaved A/B rounds (`edgebench ab`).

An A/B run measures A and B back to back in every round, alternating the order (AB, BA, ...). Slow drift
(heat, a neighbour on the host) moves both members of a round alike, so the unit of evidence is the round:
its log ratio d = log(B) - log(A). The rule, per metric, with "worse" the metric's own direction:

- regressed: a one-sided Wilcoxon signed-rank test of the rounds' d toward worse gives p <= the look's alpha
  AND the Hodges-Lehmann estimate of d (the median of the Walsh averages) is at least log(1 + threshold);
  improved, the same toward better;
- same: equivalence within the threshold both ways, two one-sided tests (TOST): a one-sided Wilcoxon test
  rejects "worse by the threshold or more" (d shifted by the threshold) AND one rejects "better by the
  threshold or more", each at the look's same-alpha. This is Pinpoint's "same" made exact: the p-value of the
  plain test at which "same" is reached falls as the noise shrinks against the threshold and as n grows;
- not worse: only the first of the two holds (B may be much better, not yet significantly beyond the
  threshold): run more, since "improved" or "same" may still come; at the last round of the budget, not worse
  (a pass, like same);
- otherwise unknown: run more rounds; at the last round of the budget, inconclusive, with the smallest
  effect this device's measured noise could have shown within the budget.

A "same" that only ruled out "worse" would fire at the first look, before "improved" can reach its stricter
per-look alpha: a B twenty times faster would be called the same.

Looking after every few rounds multiplies the chances of a false alarm, so the alpha is split evenly over the
looks that can reject at all (Bonferroni): at 7, 9, ..., 15 rounds and alpha 0.01, 7 rounds can never reach
p <= 0.0025 (their smallest p is 2**-7), so each of the other 4 looks uses 0.0025, and A/A false alarms stay
<= alpha however the sequence stops. The ratio B/A is reported as exp(estimate) with a 95% percentile
bootstrap interval (scipy.stats.bootstrap) over the rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats

from edgebench.compare.stats import ALPHA, BOOTSTRAP_ROUNDS, Decision

SAME_ALPHA = 0.05
POWER = 0.80
# asymptotic efficiency of the signed-rank test against the t-test under normal noise (3/pi)
_WILCOXON_EFFICIENCY = 3 / math.pi
_EPS = 1e-12


@dataclass(frozen=True)
class SequentialPlan:
    """When an A/B run looks at its rounds: first after `first`, then every `step`, at most `last`."""

    first: int = 7
    last: int = 15
    step: int = 2
    alpha: float = ALPHA
    same_alpha: float = SAME_ALPHA

    def __post_init__(self):
        if self.first < 2:
            raise ValueError(f"the first look needs at least 2 rounds, got {self.first}")
        if self.step < 1:
            raise ValueError(f"rounds are added at least one at a time, got step {self.step}")
        if not 0 < self.alpha < 1 or not 0 < self.same_alpha < 1:
            raise ValueError("alpha and same_alpha must be between 0 and 1")

    @property
    def looks(self) -> tuple[int, ...]:
        found = list(range(self.first, max(self.first, self.last) + 1, self.step))
        if found[-1] < self.last:
            found.append(self.last)
        return tuple(found)

    @property
    def budget(self) -> int:
        return self.looks[-1]

    @property
    def alpha_per_look(self) -> float:
        """alpha split evenly over the looks that can reject at all (Bonferroni): a look of n rounds whose
        smallest signed-rank p, 2**-n, is above its share never raises an alarm and needs none of alpha. The
        largest share alpha / k such that at most k looks can reach it."""
        for k in range(1, len(self.looks) + 1):
            if sum(2.0 ** -n <= self.alpha / k for n in self.looks) <= k:
                return self.alpha / k
        return self.alpha / len(self.looks)

    @property
    def same_alpha_per_look(self) -> float:
        return self.same_alpha / len(self.looks)


def log_ratios(base, cand) -> np.ndarray:
    """Each round's log(B / A); both sides in round order, one value per round."""
    a, b = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired samples need one value per round on each side, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("every paired sample must be a finite number > 0 (the gate compares log(metric))")
    return np.log(b) - np.log(a)


def hodges_lehmann_one_sample(values) -> float:
    """The median of the Walsh averages (x_i + x_j) / 2, i <= j: the estimate that goes with the signed-rank
    test, as the median shift goes with Mann-Whitney."""
    x = np.asarray(values, dtype=float)
    i, j = np.triu_indices(len(x))
    return float(np.median((x[i] + x[j]) / 2))


def _walsh_center(x, axis=-1):
    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    i, j = np.triu_indices(x.shape[-1])
    return np.median((x[..., i] + x[..., j]) / 2, axis=-1)


def signed_rank_p(values, alternative: str) -> float:
    """One-sided Wilcoxon signed-rank p (scipy: exact for small n without ties, else its permutation or normal
    method); zero differences are dropped, and with nothing left there is no evidence (p = 1)."""
    x = np.asarray(values, dtype=float)
    if not np.any(np.abs(x) > _EPS):
        return 1.0
    return float(stats.wilcoxon(x, alternative=alternative, zero_method="wilcox").pvalue)


def ratio_interval(d, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    if len(d) < 2 or np.ptp(d) == 0:
        value = math.exp(hodges_lehmann_one_sample(d))
        return value, value
    found = stats.bootstrap((np.asarray(d),), _walsh_center, vectorized=True, method="percentile",
                            n_resamples=BOOTSTRAP_ROUNDS, confidence_level=level,
                            rng=np.random.default_rng(seed)).confidence_interval
    return math.exp(found.low), math.exp(found.high)


def noise_sd(d) -> float:
    """The spread of the per-round log ratios, robust to one disturbed round (scaled MAD), never below the
    plain standard deviation's third (a MAD of 0 from a few equal values would claim no noise)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return float("nan")
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d))))
    return max(mad, float(np.std(d, ddof=1)) / 3)


def detectable_effect(sd: float, rounds: int, alpha: float, power: float = POWER) -> float | None:
    """The smallest change (a fraction) a one-sided signed-rank test at `alpha` catches with `power` in
    `rounds` rounds of noise `sd` (normal approximation, Wilcoxon's efficiency); None where the exact test
    cannot reach alpha in that many rounds at all (its smallest p is 2**-rounds)."""
    if not math.isfinite(sd) or 2.0 ** -rounds > alpha:
        return None
    z = NormalDist().inv_cdf(1 - alpha) + NormalDist().inv_cdf(power)
    return math.expm1(z * sd / math.sqrt(rounds * _WILCOXON_EFFICIENCY))


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


DEFAULT_PLAN = SequentialPlan()


def decide_paired(base, cand, higher_is_better: bool, threshold: float, plan: SequentialPlan = DEFAULT_PLAN,
                  seed: int = 0, interval: bool = True, final: bool | None = None) -> Decision:
    """Verdict after the rounds so far: "regressed", "improved", "same", "unknown" (run more: the budget has
    rounds left), or, once no more rounds come, "not worse" or "inconclusive". `base[i]` and `cand[i]` are
    round i's A and B. `final` says no more rounds come (default: when the budget is spent); a pair stopped
    short of it (rounds that failed, a device gone) is judged final too. `interval=False` skips the bootstrap
    (the verdict does not use it; a simulation of many gates can)."""
    if not threshold >= 0 or not math.isfinite(threshold):
        raise ValueError(f"threshold must be a fraction >= 0 (e.g. 0.03), got {threshold!r}")
    d = log_ratios(base, cand)
    n = len(d)
    final = n >= plan.budget if final is None else final
    worse = -d if higher_is_better else d  # > 0: B is worse than A
    delta = math.log1p(threshold)
    estimate = hodges_lehmann_one_sample(d)
    worse_estimate = -estimate if higher_is_better else estimate
    ratio = math.exp(estimate)
    ci_low, ci_high = ratio_interval(d, seed) if interval else (ratio, ratio)
    p_worse, p_better = signed_rank_p(worse, "greater"), signed_rank_p(worse, "less")
    # the two one-sided tests of equivalence: "worse by delta or more" and "better by delta or more" rejected
    p_not_worse, p_not_better = signed_rank_p(worse - delta, "less"), signed_rank_p(worse + delta, "greater")
    alpha, same_alpha = plan.alpha_per_look, plan.same_alpha_per_look
    sd = noise_sd(d)
    detectable = detectable_effect(sd, plan.budget, alpha)
    change = f"{abs(ratio - 1) * 100:.1f}% {'higher' if ratio > 1 else 'lower'}"
    ci = f"95% CI of the ratio {ci_low:.3f}-{ci_high:.3f}"
    thr = f"{threshold * 100:g}%"

    def result(verdict: str, p_value: float, reason: str) -> Decision:
        return Decision(verdict, ratio, ci_low, ci_high, p_value, n, n, reason, method="paired", rounds=n,
                        detectable=detectable, noise=math.expm1(sd) if math.isfinite(sd) else None)

    if p_worse <= alpha and worse_estimate >= delta - _EPS:
        return result("regressed", p_worse, f"{change} (worse) in {n} paired rounds, signed-rank p={p_worse:.2g} "
                                            f"<= {alpha:.2g} and beyond the {thr} threshold ({ci})")
    if p_better <= alpha and -worse_estimate >= delta - _EPS:
        return result("improved", p_better, f"{change} (better) in {n} paired rounds, signed-rank "
                                            f"p={p_better:.2g} <= {alpha:.2g} and beyond the {thr} threshold ({ci})")
    not_worse = p_not_worse <= same_alpha
    if not_worse and p_not_better <= same_alpha:
        p_same = max(p_not_worse, p_not_better)
        return result("same", p_same, f"within {thr} both ways after {n} paired rounds: a change of {thr} or more "
                                      f"worse and one of {thr} or more better are both ruled out "
                                      f"(p={p_same:.2g} <= {same_alpha:.2g}; {ci})")
    if not final:
        so_far = "not worse so far, " if not_worse else ""
        return result("unknown", min(p_worse, p_better), f"{so_far}not settled after {n} of {plan.budget} rounds "
                                                         f"({ci})")
    stopped = "" if n >= plan.budget else f"stopped after {n} of {plan.budget} rounds: "
    if not_worse:
        return result("not worse", p_not_worse, f"{stopped}{change}: a change of {thr} or more worse is ruled out "
                                                f"(p={p_not_worse:.2g} <= {same_alpha:.2g}), but neither a gain "
                                                f"beyond the threshold nor one within it is shown ({ci})")
    return result("inconclusive", min(p_worse, p_better),
                  stopped + _inconclusive_reason(n, sd, detectable, alpha, threshold, ci))


def _inconclusive_reason(n: int, sd: float, detectable: float | None, alpha: float, threshold: float, ci: str) -> str:
    thr = f"{threshold * 100:g}%"
    noise = f"this device's round-to-round noise ({_pct(math.expm1(sd))} sd of log B/A)"
    if detectable is None:
        return (f"not settled in {n} rounds ({ci}); {n} rounds cannot reach p <= {alpha:.2g} at all: "
                f"raise --max-rounds")
    found = (f"not settled in {n} rounds ({ci}); with {noise} the smallest change {n} rounds detect with "
             f"{POWER:.0%} power is {_pct(detectable)}")
    if detectable > threshold:
        return f"{found}, more than the {thr} threshold: raise the threshold or --max-rounds, or quiet the device"
    return f"{found}, within the {thr} threshold: the change, if any, is near it; more rounds would settle it"


__all__ = ["SAME_ALPHA", "SequentialPlan", "decide_paired", "detectable_effect", "hodges_lehmann_one_sample",
           "log_ratios", "noise_sd", "signed_rank_p"]
