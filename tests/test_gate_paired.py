"""The paired, sequential rule of `ab` (compare/paired.py) against known values, and the runner's steal and
load reading (runner/host_reading.py) against /proc files of known content."""

from __future__ import annotations

import itertools
import math
import random
from types import SimpleNamespace

import pytest

from edgebench.compare.paired import (
    SequentialPlan,
    decide_paired,
    detectable_effect,
    hodges_lehmann_one_sample,
    signed_rank_p,
)
from edgebench.results.records import Sample
from edgebench.runner.host_reading import HostReading, cpu_ticks
from edgebench.sweep.disturbance import Disturbance


def test_the_default_plan_looks_at_7_9_11_13_15_and_splits_alpha_over_the_looks_that_can_reject():
    plan = SequentialPlan()
    assert plan.looks == (7, 9, 11, 13, 15) and plan.budget == 15
    # 7 rounds cannot reach 0.01 / 4 (2**-7 = 0.0078): the 4 other looks share alpha
    assert plan.alpha_per_look == pytest.approx(0.0025) and plan.same_alpha_per_look == pytest.approx(0.01)
    assert SequentialPlan(first=5, last=10, step=2).looks == (5, 7, 9, 10)
    assert SequentialPlan(first=5, last=8).alpha_per_look == pytest.approx(0.005)  # only 8 reaches 0.005
    assert SequentialPlan(first=7, last=11).alpha_per_look == pytest.approx(0.005)  # 9 and 11
    with pytest.raises(ValueError):
        SequentialPlan(first=1)


def test_signed_rank_p_known_values():
    # all n differences positive: the exact one-sided p is 2**-n
    assert signed_rank_p([0.1 * i for i in range(1, 8)], "greater") == pytest.approx(1 / 128)
    assert signed_rank_p([0.1 * i for i in range(1, 10)], "greater") == pytest.approx(1 / 512)
    # one negative difference of rank 7 among 7: W+ = 21, P(W+ >= 21) = 19/128
    assert signed_rank_p([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -0.7], "greater") == pytest.approx(19 / 128)
    assert signed_rank_p([0.0, 0.0, 0.0], "greater") == 1.0


def test_hodges_lehmann_one_sample_is_the_median_of_walsh_averages():
    # Walsh averages of (1, 2, 9): 1, 1.5, 5, 2, 5.5, 9 -> median 3.5
    assert hodges_lehmann_one_sample([1, 2, 9]) == pytest.approx(3.5)


def test_detectable_effect_known_value_and_the_exact_floor():
    # (z_0.998 + z_0.8) * 0.02 / sqrt(15 * 3 / pi)
    z = 2.878161739095483 + 0.8416212335729143
    assert detectable_effect(0.02, 15, 0.002) == pytest.approx(math.expm1(z * 0.02 / math.sqrt(15 * 3 / math.pi)))
    assert detectable_effect(0.02, 15, 0.002) == pytest.approx(0.01985, abs=1e-5)
    assert detectable_effect(0.02, 7, 0.002) is None  # 2**-7 > 0.002: no effect is detectable in 7 rounds


def rounds(n: int, slowdown: float, noise: float, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    drift = [100 * (1 + 0.2 * math.sin(i / 2)) for i in range(n)]  # slow drift, shared by A and B of a round
    return ([d * rng.lognormvariate(0, noise) for d in drift],
            [d * rng.lognormvariate(0, noise) / slowdown for d in drift])


def test_a_clear_slowdown_regresses_at_the_first_look_that_can_reach_alpha():
    a, b = rounds(15, 1.10, 0.01, seed=1)
    assert decide_paired(a[:7], b[:7], True, 0.03).verdict == "unknown"  # 7 rounds: p >= 1/128 > 0.0025
    found = decide_paired(a[:9], b[:9], True, 0.03)
    assert found.verdict == "regressed" and found.p_value == pytest.approx(1 / 512) and found.method == "paired"
    assert 0.88 < found.ratio < 0.92 and found.rounds == 9


def test_pairing_cancels_drift_that_an_unpaired_test_cannot():
    from edgebench.compare.stats import decide

    a, b = rounds(15, 1.10, 0.01, seed=2)
    assert decide(a, b, True, 0.03).verdict != "regressed"  # the drift (+-20%) swamps a 10% step unpaired
    assert decide_paired(a, b, True, 0.03).verdict == "regressed"


def test_identical_variants_are_the_same_early_and_lower_is_better_is_respected():
    a, b = rounds(7, 1.0, 0.005, seed=3)
    assert decide_paired(a, b, True, 0.03).verdict == "same"
    slower = [v * 1.2 for v in a]  # latency up 20%: worse for a lower-is-better metric
    assert decide_paired(a + a[:2], slower + slower[:2], False, 0.05).verdict == "regressed"
    assert decide_paired(a + a[:2], slower + slower[:2], True, 0.05).verdict == "improved"


def test_an_effect_below_the_threshold_is_never_a_regression():
    a, b = rounds(15, 1.02, 0.001, seed=4)
    assert decide_paired(a, b, True, 0.03).verdict == "same"


def test_inconclusive_at_the_budget_says_the_smallest_effect_the_noise_allows():
    a, b = rounds(15, 1.0, 0.10, seed=5)
    found = decide_paired(a, b, True, 0.03)
    assert found.verdict == "inconclusive" and found.detectable > 0.03
    assert f"is {found.detectable * 100:.1f}%, more than the 3% threshold" in found.reason
    assert "with 80% power" in found.reason


@pytest.mark.parametrize("speedup", [2.0, 20.0])
def test_a_large_improvement_is_never_same_it_runs_on_to_improved(speedup):
    # issue 24: "same" that only ruled out "worse" fired at 7 rounds (p 2**-7 <= 0.01) before "improved" could
    # reach its per-look 0.0025: a B twice (sleep engine) or twenty times (threads) faster was called the same
    a, b = rounds(15, 1 / speedup, 0.01, seed=6)
    first = decide_paired(a[:7], b[:7], True, 0.03)
    assert first.verdict == "unknown" and first.reason.startswith("not worse so far")
    assert decide_paired(a[:9], b[:9], True, 0.03).verdict == "improved"
    # the mirror image: A the faster one
    assert decide_paired(b[:7], a[:7], True, 0.03).verdict == "unknown"
    assert decide_paired(b[:9], a[:9], True, 0.03).verdict == "regressed"


def test_same_needs_both_one_sided_tests_and_not_worse_is_the_verdict_where_only_one_holds():
    # B 2.5% faster, noise 2%: "worse by 3%" is ruled out early, "better by 3%" is not, nor is a gain beyond
    # 3% shown: run on, and at the end of the budget, not worse
    a, b = rounds(15, 1 / 1.025, 0.02, seed=0)
    assert [decide_paired(a[:n], b[:n], True, 0.03).verdict for n in (7, 9, 11, 13)] == ["unknown"] * 4
    found = decide_paired(a, b, True, 0.03)
    assert found.verdict == "not worse" and "a change of 3% or more worse is ruled out" in found.reason
    # a pair stopped short of its budget (failed rounds) is judged as it stands
    short = decide_paired(a[:11], b[:11], True, 0.03, final=True)
    assert short.verdict == "not worse" and short.reason.startswith("stopped after 11 of 15 rounds")
    # a same-sized loss is no pass: it stays open, then inconclusive
    assert decide_paired(b, a, True, 0.03).verdict == "inconclusive"


def test_paired_samples_must_pair():
    with pytest.raises(ValueError, match="one value per round"):
        decide_paired([1, 2, 3], [1, 2], True, 0.03)
    with pytest.raises(ValueError, match="> 0"):
        decide_paired([1, 2, 0], [1, 2, 3], True, 0.03)


def sample(**host) -> Sample:
    return Sample(cell="A1:x", n_tokens=1, rep=0, t_ns=1, ts=1.0, host=host)


def test_a_round_is_disturbed_by_steal_or_by_a_thread_kept_off_the_cpu_during_it():
    limits = Disturbance()
    assert limits.why([sample(steal_pct=0.5, cpu_wait_pct=3.0, load1=3.0, n_cpus=2)]) is None
    assert limits.why([sample(steal_pct=7.9, load1=0.1, n_cpus=2)]) == "steal 7.9% > 5%"
    # issue 24: a round at 100 t/s against 19,500 came with a load of 2.2-2.6 on 2 CPUs, under the old limit of
    # 4; during that round the benchmark waited for a CPU nearly all the time
    assert limits.why([sample(steal_pct=0.0, cpu_wait_pct=99.0, load1=2.4, n_cpus=2)]) == (
        "waited for a CPU 99% of the repetition > 10%")
    assert limits.why([sample(steal_pct=0.0, load1=4.5, n_cpus=2)]) is None  # the load average lags: not by default
    assert Disturbance(max_load=1).why([sample(load1=1.5)]) == "load 1.50 > 1"
    assert limits.why([sample()]) is None  # an older runner read nothing: nothing to hold against it
    with pytest.raises(ValueError):
        Disturbance(cool_off_s=-1)


def write_schedstat(root, pid: int, waits: dict) -> None:
    for tid, wait in waits.items():
        folder = root / "proc" / str(pid) / "task" / str(tid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "schedstat").write_text(f"123456 {wait} 42\n")  # ns on a CPU, ns waiting to run, timeslices


def test_the_runner_reads_the_run_queue_wait_of_the_engine_threads_over_the_repetition(tmp_path, monkeypatch):
    from edgebench.runner import host_reading

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("2.40 0.50 0.25 5/100 42\n")
    write_stat(tmp_path, steal=0, busy=100)
    clock = itertools.chain([0, 1_000_000_000, 1_100_000_000], itertools.count(2_000_000_000, 100_000_000))
    monkeypatch.setattr(host_reading, "time", SimpleNamespace(monotonic_ns=lambda: next(clock)))
    write_schedstat(tmp_path, 77, {77: 5_000_000, 78: 0})
    host = HostReading(str(tmp_path), pid=lambda: 77)  # t = 0
    host.mark()  # the repetition starts at t = 1 s
    # during its 100 ms, thread 78 waited 80 ms for a CPU, 77 waited 10 ms, and thread 79 began and waited 30 ms
    write_schedstat(tmp_path, 77, {77: 15_000_000, 78: 80_000_000, 79: 30_000_000})
    host.mark()  # t = 1.1 s
    write_schedstat(tmp_path, 77, {77: 900_000_000, 78: 80_000_000, 79: 30_000_000})  # after the repetition
    reading = host.reading()  # the window is the marked repetition, not the time since the last reading
    assert reading["cpu_wait_pct"] == pytest.approx(80.0) and reading["load1"] == 2.4
    assert host.reading()["cpu_wait_pct"] == 0.0  # no marks: since the previous reading, and nothing waited
    assert HostReading(str(tmp_path), pid=lambda: 999).reading()["cpu_wait_pct"] is None  # no such process


def write_stat(root, steal: int, busy: int) -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    (root / "proc" / "stat").write_text(f"cpu  {busy} 0 0 1000 0 0 0 {steal} 50 0\ncpu0 1 0 0 1 0 0 0 0 0 0\n")


def test_the_runner_reads_steal_as_a_share_of_the_cpu_time_between_samples(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("1.25 0.50 0.25 1/100 42\n")
    write_stat(tmp_path, steal=0, busy=100)
    assert cpu_ticks(str(tmp_path)) == (0, 1100)  # guest (50) is inside user already: not added again
    host = HostReading(str(tmp_path))
    write_stat(tmp_path, steal=30, busy=170)  # 100 more ticks, 30 of them stolen
    reading = host.reading()
    assert reading["steal_pct"] == pytest.approx(30.0) and reading["load1"] == 1.25 and reading["n_cpus"] >= 1
    assert host.reading()["steal_pct"] is None  # no time passed: no share to give


def test_a_kernel_without_a_steal_column_gives_none(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "stat").write_text("cpu  1 2 3 4\n")
    assert cpu_ticks(str(tmp_path)) is None
    assert HostReading(str(tmp_path)).reading()["steal_pct"] is None
