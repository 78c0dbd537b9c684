"""The statistics of the regression gate (edgebench.compare.stats) against values known independently:
counted by hand, enumerated by brute force, or taken from scipy (hard-coded: they hold whoever computes them)."""

from __future__ import annotations

import itertools
import math
import random
import time

import pytest

from edgebench.compare import stats
from edgebench.compare.stats import (
    ALPHA,
    BOOTSTRAP_ROUNDS,
    Decision,
    bootstrap_ci,
    decide,
    hodges_lehmann,
    mann_whitney_greater,
    min_one_sided_p,
)


def u_by_pairs(x, y):
    """U of x counted pair by pair, ties one half."""
    return sum((a > b) + 0.5 * (a == b) for a in x for b in y)


def p_by_enumeration(x, y):
    """P(U >= U_observed) over every one of the C(n+m, n) ways to split the pooled values."""
    pooled = list(x) + list(y)
    observed = u_by_pairs(x, y)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(x)):
        rest = set(range(len(pooled))) - set(chosen)
        total += 1
        hits += u_by_pairs([pooled[i] for i in chosen], [pooled[i] for i in rest]) >= observed
    return hits / total


# ---- exact Mann-Whitney --------------------------------------------------------------------------------------


def test_constants():
    assert ALPHA == 0.01
    assert BOOTSTRAP_ROUNDS == 2000


def test_fully_separated_three_per_side_is_one_in_twenty():
    assert mann_whitney_greater([4, 5, 6], [1, 2, 3]) == pytest.approx(1 / 20, abs=1e-15)
    assert mann_whitney_greater([1, 2, 3], [4, 5, 6]) == 1.0  # every split has U >= 0


def test_fully_separated_five_per_side_is_one_in_252():
    assert mann_whitney_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(1 / 252, abs=1e-15)


def test_one_overlap():
    # x = 3, 5, 6 against 1, 2, 4: U = 8 of 9; only the splits with U = 9 and U = 8 reach it: 2 of 20
    assert u_by_pairs([3, 5, 6], [1, 2, 4]) == 8
    assert mann_whitney_greater([3, 5, 6], [1, 2, 4]) == pytest.approx(2 / 20, abs=1e-15)
    # five per side, one swapped pair: U = 24 of 25 -> 2 of 252
    assert mann_whitney_greater([5, 7, 8, 9, 10], [1, 2, 3, 4, 6]) == pytest.approx(2 / 252, abs=1e-15)


def test_without_ties_matches_scipy_exact():
    # scipy 1.17 mannwhitneyu(x, y, alternative="greater", method="exact"): 0.020046620046620046 = 129/6435
    x = [12.1, 14.3, 9.8, 15.0, 11.2, 13.7, 10.4]
    y = [10.9, 8.7, 11.5, 9.1, 12.6, 7.9, 10.0, 9.5]
    assert mann_whitney_greater(x, y) == pytest.approx(129 / 6435, abs=1e-15)
    assert mann_whitney_greater(y, x) == pytest.approx(0.9855477855477855, abs=1e-15)


def test_ties_count_one_half_and_p_is_the_enumerated_one():
    x, y = [3, 4, 5, 5], [1, 2, 3, 5]
    assert u_by_pairs(x, y) == 12.5
    assert p_by_enumeration(x, y) == pytest.approx(10 / 70, abs=1e-15)
    assert mann_whitney_greater(x, y) == pytest.approx(10 / 70, abs=1e-15)
    # (scipy's method="exact" gives 12/70 = 0.1714 here: it uses the no-ties distribution at floor(U) = 12;
    # the enumeration above is the exact permutation p with these ties)


@pytest.mark.parametrize("seed", range(40))
def test_random_small_cases_match_brute_force_enumeration(seed):
    rng = random.Random(seed)
    n, m = rng.randint(1, 6), rng.randint(1, 6)
    # rounded to one digit: many ties, within and across the samples
    x = [round(rng.gauss(0.3, 1), 1 if seed % 2 else 3) for _ in range(n)]
    y = [round(rng.gauss(0.0, 1), 1 if seed % 2 else 3) for _ in range(m)]
    assert mann_whitney_greater(x, y) == pytest.approx(p_by_enumeration(x, y), abs=1e-12)


def test_all_values_equal_gives_p_one():
    assert mann_whitney_greater([2.0] * 4, [2.0] * 5) == 1.0


def test_exact_up_to_the_cap_then_normal():
    assert stats.EXACT_MAX_TOTAL == 50
    rng = random.Random(5)
    x = [rng.gauss(0.4, 1) for _ in range(25)]
    y = [rng.gauss(0.0, 1) for _ in range(25)]
    assert mann_whitney_greater(x, y) == pytest.approx(stats._exact_greater(x, y), rel=1e-9)
    assert mann_whitney_greater(x, y + [0.123]) == stats._normal_greater(x, y + [0.123])


def test_normal_approximation_textbook_value():
    # x = 0..25, y = 0.5..25.5: U = 0 + 1 + ... + 25 = 325, mean nm/2 = 338, sd sqrt(26*26*53/12)
    x = [float(v) for v in range(26)]
    y = [v + 0.5 for v in range(26)]
    assert u_by_pairs(x, y) == 325
    z = (325 - 338 - 0.5) / math.sqrt(26 * 26 * 53 / 12)
    expected = 0.5 * math.erfc(z / math.sqrt(2))
    assert expected == pytest.approx(0.5975714543313573, abs=1e-12)  # scipy method="asymptotic"
    assert mann_whitney_greater(x, y) == pytest.approx(expected, abs=1e-12)


def test_normal_approximation_with_ties():
    # tie groups 1 (50 values), 2 (55), 3 (5): scipy method="asymptotic" gives 0.9372018346488025
    x = [1.0] * 30 + [2.0] * 30
    y = [1.0] * 20 + [2.0] * 25 + [3.0] * 5
    assert mann_whitney_greater(x, y) == pytest.approx(0.9372018346488025, abs=1e-12)


def test_normal_approximation_agrees_with_random_permutations():
    rng = random.Random(11)
    x = [rng.gauss(0.5, 1) for _ in range(30)]
    y = [rng.gauss(0.0, 1) for _ in range(30)]
    observed = u_by_pairs(x, y)
    pooled = x + y
    hits, draws = 0, 20000
    for _ in range(draws):
        rng.shuffle(pooled)
        hits += u_by_pairs(pooled[:30], pooled[30:]) >= observed
    permutation_p = hits / draws  # about 0.0035; its standard error is about 0.0004
    assert mann_whitney_greater(x, y) == pytest.approx(permutation_p, abs=0.002)


def test_min_one_sided_p():
    assert min_one_sided_p(3, 3) == pytest.approx(0.05)
    assert min_one_sided_p(4, 4) == pytest.approx(1 / 70)
    assert min_one_sided_p(5, 5) == pytest.approx(1 / 252)
    assert min_one_sided_p(4, 5) == pytest.approx(1 / 126)
    assert min_one_sided_p(7, 7) == pytest.approx(1 / 3432)
    with pytest.raises(ValueError):
        min_one_sided_p(0, 3)


def test_mann_whitney_rejects_empty_and_nan():
    with pytest.raises(ValueError, match="empty"):
        mann_whitney_greater([], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        mann_whitney_greater([1.0, float("nan")], [1.0])


# ---- Hodges-Lehmann and bootstrap ----------------------------------------------------------------------------


def test_hodges_lehmann_known_sets():
    # y - x for x = 1, 2, 3 and y = 2, 4, 6: -1 0 1 1 2 3 3 4 5 -> median 2
    assert hodges_lehmann([1, 2, 3], [2, 4, 6]) == 2
    # even count: differences -1 0 9 10 -> (0 + 9) / 2
    assert hodges_lehmann([0, 1], [0, 10]) == 4.5
    assert hodges_lehmann([5.0], [3.0]) == -2.0
    with pytest.raises(ValueError):
        hodges_lehmann([], [1.0])


def test_bootstrap_reproducible_and_contains_the_estimate():
    rng = random.Random(2)
    x = [rng.gauss(10, 1) for _ in range(9)]
    y = [rng.gauss(11, 1) for _ in range(8)]
    ci = bootstrap_ci(x, y, hodges_lehmann, seed=7)
    assert ci == bootstrap_ci(x, y, hodges_lehmann, seed=7)

    def mean_shift(a, b):  # continuous, so another seed moves its quantiles (the HL's may coincide)
        return sum(b) / len(b) - sum(a) / len(a)

    assert bootstrap_ci(x, y, mean_shift, seed=7) != bootstrap_ci(x, y, mean_shift, seed=8)
    assert ci[0] < hodges_lehmann(x, y) < ci[1]
    wide = bootstrap_ci(x, y, hodges_lehmann, level=0.99, seed=7)
    assert wide[0] <= ci[0] and ci[1] <= wide[1]


def test_bootstrap_of_constants_and_known_quantiles():
    assert bootstrap_ci([1.0], [5.0], hodges_lehmann) == (4.0, 4.0)
    # statistic = the first value drawn from x in {0, 1}: 0 and 1 each about half the time; the 2.5% and 97.5%
    # quantiles of about 1000 zeros and 1000 ones are 0 and 1
    assert bootstrap_ci([0.0, 1.0], [0.0], lambda a, b: a[0], rounds=2000) == (0.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], [1.0], hodges_lehmann, level=1.5)


@pytest.mark.parametrize("seed", range(5))
def test_the_interval_in_decide_is_the_percentile_bootstrap_of_the_log_shift(seed):
    rng = random.Random(seed)
    base = [math.exp(rng.gauss(4, 0.05)) for _ in range(rng.randint(5, 15))]
    cand = [math.exp(rng.gauss(4, 0.05)) for _ in range(rng.randint(5, 15))]
    low, high = bootstrap_ci([math.log(v) for v in base], [math.log(v) for v in cand], hodges_lehmann,
                             rounds=BOOTSTRAP_ROUNDS, seed=seed)
    found = decide(base, cand, True, 0.03, seed=seed)
    assert (found.ci_low, found.ci_high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-12)


# ---- decide --------------------------------------------------------------------------------------------------

BASE7 = [100.0, 101.0, 99.0, 100.5, 99.5, 100.2, 99.8]  # t/s, CV 0.7%


def test_clear_ten_percent_slowdown_with_seven_runs_is_a_regression():
    cand = [v / 1.10 for v in reversed(BASE7)]
    d = decide(BASE7, cand, higher_is_better=True, threshold=0.03)
    assert isinstance(d, Decision)
    assert d.verdict == "regressed"
    assert d.ratio == pytest.approx(1 / 1.10, rel=1e-12)  # the same values scaled: HL is exactly the scale
    assert d.p_value == pytest.approx(1 / 3432, abs=1e-15)  # fully separated, 7 per side
    assert d.ci_low <= d.ratio <= d.ci_high < 1 / 1.03
    assert (d.n_base, d.n_cand) == (7, 7)
    assert d.reason.startswith("9.1% lower (worse), p=0.00029 <= 0.01")


def test_identical_distributions_are_the_same():
    d = decide(BASE7, list(reversed(BASE7)), higher_is_better=True, threshold=0.03)
    assert d.verdict == "same"
    assert d.ratio == 1.0
    assert d.ci_low < 1.0 < d.ci_high
    assert 1 / 1.03 < d.ci_low and d.ci_high < 1.03
    assert d.p_value > 0.5


def test_three_runs_per_side_are_inconclusive_however_far_apart():
    d = decide([100.0, 101.0, 99.0], [50.0, 51.0, 49.0], higher_is_better=True, threshold=0.03)
    assert d.verdict == "inconclusive"
    assert d.reason.startswith("n=3 per side: the exact test cannot reach p <= 0.01")
    assert d.p_value == pytest.approx(0.05)
    assert d.ratio == pytest.approx(0.5, rel=0.02)  # the estimate is still reported


def test_four_per_side_cannot_reach_alpha_five_can():
    base, cand = [100.0, 101.0, 99.0, 100.5, 99.5], [80.0, 81.0, 79.0, 80.5, 79.5]
    assert decide(base[:4], cand[:4], True, 0.03).verdict == "inconclusive"  # min p 1/70 > 0.01
    assert decide(base[:4], cand, True, 0.03).verdict == "regressed"  # min p 1/126
    assert decide(base[:3], cand[:4], True, 0.03).reason.startswith("n=3 base, 4 candidate: ")  # 1/35
    assert decide(base, cand, True, 0.03).verdict == "regressed"  # min p 1/252


def test_significant_one_percent_shift_within_a_three_percent_threshold_is_the_same():
    base = [100.0, 100.1, 99.9, 100.05, 99.95, 100.02, 99.98]  # CV 0.07%
    cand = [v / 1.01 for v in base]
    d = decide(base, cand, higher_is_better=True, threshold=0.03)
    assert d.p_value == pytest.approx(1 / 3432, abs=1e-15)
    assert d.verdict == "same"
    assert d.reason == "significant (p=0.00029) but 1.0% lower (worse) is within the 3% threshold"


def test_threshold_is_inclusive():
    cand = [v / 1.03 for v in BASE7]
    # HL of the logs is -log(1.03) to rounding: exactly the threshold counts as a regression
    assert decide([v * 10 for v in BASE7], [v * 10 for v in cand], True, 0.03).verdict == "regressed"


def test_lower_is_better_metrics():
    latency = [20.0, 20.2, 19.8, 20.1, 19.9, 20.05, 19.95]  # ms
    slower = [v * 1.10 for v in latency]
    d = decide(latency, slower, higher_is_better=False, threshold=0.03)
    assert d.verdict == "regressed"
    assert d.ratio == pytest.approx(1.10, rel=1e-12)
    assert d.reason.startswith("10.0% higher (worse)")
    d = decide(latency, [v / 1.10 for v in latency], higher_is_better=False, threshold=0.03)
    assert d.verdict == "improved"
    assert d.ratio == pytest.approx(1 / 1.10, rel=1e-12)
    # the same numbers read as t/s: growth is an improvement
    assert decide(latency, slower, higher_is_better=True, threshold=0.03).verdict == "improved"


def test_improvement_of_throughput():
    d = decide(BASE7, [v * 1.10 for v in BASE7], higher_is_better=True, threshold=0.03)
    assert d.verdict == "improved"
    assert d.p_value == pytest.approx(1 / 3432, abs=1e-15)  # the p toward better, the observed direction
    assert d.reason.startswith("10.0% higher (better)")


def test_noisy_small_slowdown_is_inconclusive_not_same():
    rng = random.Random(3)
    base = [100 * rng.lognormvariate(0, 0.05) for _ in range(7)]  # CV 5%
    cand = [98 * rng.lognormvariate(0, 0.05) for _ in range(7)]
    d = decide(base, cand, higher_is_better=True, threshold=0.03)
    assert d.verdict == "inconclusive"
    assert d.ci_low < 1 / 1.03  # a 3% regression is not ruled out
    assert "more runs" in d.reason


def test_decide_is_deterministic_and_seeded():
    rng = random.Random(4)
    base = [100 * rng.lognormvariate(0, 0.02) for _ in range(10)]
    cand = [100 * rng.lognormvariate(0, 0.02) for _ in range(10)]
    assert decide(base, cand, True, 0.03) == decide(base, cand, True, 0.03)
    other = decide(base, cand, True, 0.03, seed=1)
    assert (other.ci_low, other.ci_high) != (decide(base, cand, True, 0.03).ci_low,
                                             decide(base, cand, True, 0.03).ci_high)
    assert other.ratio == decide(base, cand, True, 0.03).ratio


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_decide_rejects_values_without_a_log(bad):
    with pytest.raises(ValueError, match="base"):
        decide([1.0, 2.0, bad], [1.0, 2.0, 3.0], True, 0.03)
    with pytest.raises(ValueError, match="candidate"):
        decide([1.0, 2.0, 3.0], [bad, 2.0, 3.0], True, 0.03)


def test_decide_rejects_empty_sides_and_bad_parameters():
    with pytest.raises(ValueError, match="base is empty"):
        decide([], [1.0], True, 0.03)
    with pytest.raises(ValueError, match="candidate is empty"):
        decide([1.0], [], True, 0.03)
    with pytest.raises(ValueError, match="threshold"):
        decide([1.0], [1.0], True, -0.03)


def test_decide_is_fast_at_fifteen_per_side():
    rng = random.Random(6)
    base = [100 * rng.lognormvariate(0, 0.02) for _ in range(15)]
    cand = [97 * rng.lognormvariate(0, 0.02) for _ in range(15)]
    start = time.perf_counter()
    decide(base, cand, True, 0.03)
    assert time.perf_counter() - start < 0.5  # about 30 ms on a 2-core VM; generous for a loaded CI machine
