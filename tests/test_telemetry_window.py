"""summarize_window: throttling, energy (RAPL wrap-around, power integral) and memory peaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgebench.runner.telemetry import Sampler, counter_delta, summarize_window

FIXTURES = Path(__file__).parent / "fixtures" / "telemetry"
RANGE = 262143328850  # a real max_energy_range_uj


def rec(t, **fields):
    fields["t"] = t
    fields.setdefault("ts", 1.7e9 + t)
    return fields


def policy(cur, top, scaling_max=None):
    return {"cur": cur, "max": top, "scaling_max": top if scaling_max is None else scaling_max}


def rapl(t, **domains):
    return rec(t, energy_uj=dict(domains), energy_range_uj={d: RANGE for d in domains})


# --- nothing to go on -------------------------------------------------------------

def test_no_records_gives_nones_not_zeros():
    summary = summarize_window([], 128)
    assert summary == {
        "n_records": 0, "duration_s": None, "max_temp_c": None, "min_freq_ratio": None,
        "throttled": None, "throttle_reasons": None, "energy_j": None, "energy_source": None,
        "avg_power_w": None, "j_per_token": None, "peak_rss_kb": None, "max_rss_kb": None, "engine_cpus": None,
        "peak_vram_mib": None, "max_vram_used_mib": None, "vram_total_mib": None, "max_gpu_temp_c": None,
        "min_gpu_clock_ratio": None, "gpu_util_pct": None, "gpu_power_w": None, "gpu_energy_j": None,
        "gpu_j_per_token": None,
    }


def test_records_without_sources_give_nones():
    summary = summarize_window([rec(1.0), rec(2.0)], 64)
    assert summary["n_records"] == 2 and summary["duration_s"] == 1.0
    assert all(summary[k] is None for k in ("max_temp_c", "min_freq_ratio", "throttled", "energy_j",
                                            "j_per_token", "peak_rss_kb"))


def test_one_record_has_no_energy():
    assert summarize_window([rapl(1.0, **{"package-0": 5_000_000})], 10)["energy_j"] is None


# --- temperature and throttling ----------------------------------------------------

def test_max_temp_over_all_zones_and_records():
    records = [rec(0.0, thermal_c={"cpu": 50.0, "cv0": -256.0}), rec(1.0, thermal_c={"cpu": 63.5, "gpu": 70.25}),
               rec(2.0, thermal_c={"cpu": 61.0})]
    assert summarize_window(records, 1)["max_temp_c"] == 70.25


def test_not_throttled_at_full_frequency():
    records = [rec(t, cpufreq_khz={"policy0": policy(2400000, 2400000)}) for t in (0.0, 1.0)]
    summary = summarize_window(records, 1)
    assert summary["min_freq_ratio"] == 1.0
    assert summary["throttled"] is False and summary["throttle_reasons"] == []


def test_throttled_by_frequency_ratio():
    records = [rec(0.0, cpufreq_khz={"policy0": policy(2400000, 2400000), "policy4": policy(1510400, 1510400)}),
               rec(1.0, cpufreq_khz={"policy0": policy(1800000, 2400000), "policy4": policy(1510400, 1510400)})]
    summary = summarize_window(records, 1)
    assert summary["min_freq_ratio"] == 0.75
    assert summary["throttled"] is True and summary["throttle_reasons"] == ["freq_ratio"]
    assert summarize_window(records, 1, throttle_ratio=0.7)["throttled"] is False


def test_throttled_by_lowered_scaling_max_even_at_full_ratio():
    records = [rec(0.0, cpufreq_khz={"policy7": policy(2073600, 2841600, scaling_max=2073600)})]
    summary = summarize_window(records, 1, throttle_ratio=0.5)
    assert summary["throttle_reasons"] == ["scaling_max"] and summary["throttled"] is True


def test_throttled_by_temperature_limit():
    records = [rec(0.0, thermal_c={"cpu-thermal": 79.9}), rec(1.0, thermal_c={"cpu-thermal": 85.0})]
    assert summarize_window(records, 1, max_temp_c=85.0)["throttle_reasons"] == ["temp"]
    assert summarize_window(records, 1, max_temp_c=90.0)["throttled"] is False
    # temperatures but no limit and no cpufreq: nothing to judge by
    assert summarize_window(records, 1)["throttled"] is None


def test_android_fixture_is_throttled_by_its_capped_prime_core():
    sampler = Sampler(str(FIXTURES / "termux_android"), pid=4242)
    summary = summarize_window([sampler.snapshot(), sampler.snapshot()], 32)
    assert summary["min_freq_ratio"] == pytest.approx(2073600 / 2841600)
    assert summary["throttle_reasons"] == ["freq_ratio", "scaling_max"]
    assert summary["max_temp_c"] == 47.9


def test_rpi5_fixture_is_not_throttled():
    sampler = Sampler(str(FIXTURES / "rpi5"), pid=4242)
    summary = summarize_window([sampler.snapshot(), sampler.snapshot()], 32, max_temp_c=85)
    assert summary["throttled"] is False and summary["max_temp_c"] == 52.3
    assert summary["energy_j"] is None and summary["j_per_token"] is None


# --- RAPL energy ----------------------------------------------------------------------

def test_counter_delta():
    assert counter_delta(100, 250, RANGE) == 150
    assert counter_delta(RANGE - 1_000_000, 500_000, RANGE) == 1_500_000
    assert counter_delta(500, 100, None) is None  # went backwards and no wrap point known


def test_rapl_energy_simple():
    records = [rapl(10.0, **{"package-0": 48_213_377_109}), rapl(12.0, **{"package-0": 48_243_377_109})]
    summary = summarize_window(records, 60)
    assert summary["energy_source"] == "rapl"
    assert summary["energy_j"] == pytest.approx(30.0)
    assert summary["j_per_token"] == pytest.approx(0.5)
    assert summary["avg_power_w"] == pytest.approx(15.0)


def test_rapl_wraps_around_between_first_and_last():
    records = [rapl(0.0, **{"package-0": RANGE - 4_000_000}), rapl(1.0, **{"package-0": RANGE - 1_000_000}),
               rapl(2.0, **{"package-0": 6_000_000})]
    assert summarize_window(records, 10)["energy_j"] == pytest.approx(10.0)


def test_rapl_wraps_more_than_once_in_a_long_window():
    step = RANGE // 2
    values = [0, step, 2 * step, 3 * step - RANGE, 4 * step - RANGE, 5 * step - 2 * RANGE]
    assert values[3] < values[2] and values[5] < values[4]  # two wraps
    records = [rapl(float(i), **{"package-0": v}) for i, v in enumerate(values)]
    assert summarize_window(records, 1)["energy_j"] == pytest.approx(5 * step / 1e6)


def test_rapl_prefers_psys_over_packages():
    records = [rapl(0.0, **{"package-0": 1_000_000, "psys": 5_000_000}),
               rapl(1.0, **{"package-0": 11_000_000, "psys": 25_000_000})]
    assert summarize_window(records, 1)["energy_j"] == pytest.approx(20.0)


def test_rapl_sums_packages_on_multi_socket():
    records = [rapl(0.0, **{"package-0": 0, "package-1": 0}),
               rapl(1.0, **{"package-0": 7_000_000, "package-1": 5_000_000})]
    assert summarize_window(records, 1)["energy_j"] == pytest.approx(12.0)


def test_rapl_backwards_jump_without_range_is_not_invented():
    records = [rec(0.0, energy_uj={"package-0": 9_000_000}), rec(1.0, energy_uj={"package-0": 1_000_000})]
    summary = summarize_window(records, 4)
    assert summary["energy_j"] is None and summary["j_per_token"] is None


def test_rapl_wins_over_power_rails():
    records = [dict(rapl(0.0, **{"package-0": 0}), power_total_w=9.0),
               dict(rapl(1.0, **{"package-0": 4_000_000}), power_total_w=9.0)]
    summary = summarize_window(records, 1)
    assert summary["energy_source"] == "rapl" and summary["energy_j"] == pytest.approx(4.0)


# --- power integral ---------------------------------------------------------------------

def test_power_integral_trapezoid():
    records = [rec(0.0, power_total_w=4.0), rec(1.0, power_total_w=6.0), rec(3.0, power_total_w=6.0)]
    summary = summarize_window(records, 22)
    # (4+6)/2*1 + (6+6)/2*2 = 5 + 12
    assert summary["energy_source"] == "power"
    assert summary["energy_j"] == pytest.approx(17.0)
    assert summary["j_per_token"] == pytest.approx(17.0 / 22)
    assert summary["avg_power_w"] == pytest.approx(17.0 / 3)


def test_power_integral_skips_a_missed_reading():
    records = [rec(0.0, power_total_w=5.0), rec(1.0), rec(2.0, power_total_w=5.0)]
    assert summarize_window(records, 1)["energy_j"] == pytest.approx(10.0)


def test_window_bounds_interpolate_energy():
    # marks taken just outside the timed region; the window itself is [1, 3]
    records = [rec(0.0, power_total_w=6.0), rec(4.0, power_total_w=6.0)]
    summary = summarize_window(records, 12, t0=1.0, t1=3.0)
    assert summary["energy_j"] == pytest.approx(12.0)
    assert summary["j_per_token"] == pytest.approx(1.0)
    counters = [rapl(0.0, **{"package-0": 0}), rapl(4.0, **{"package-0": 40_000_000})]
    assert summarize_window(counters, 1, t0=1.0, t1=3.0)["energy_j"] == pytest.approx(20.0)


def test_window_outside_the_measurements_has_no_energy():
    records = [rec(0.0, power_total_w=6.0), rec(1.0, power_total_w=6.0)]
    assert summarize_window(records, 1, t0=5.0, t1=6.0)["energy_j"] is None


def test_zero_tokens_gives_no_per_token_energy():
    records = [rec(0.0, power_total_w=4.0), rec(1.0, power_total_w=4.0)]
    summary = summarize_window(records, 0)
    assert summary["energy_j"] == pytest.approx(4.0) and summary["j_per_token"] is None


# --- memory ---------------------------------------------------------------------------

def test_peak_rss_uses_hwm_and_rss():
    records = [rec(0.0, rss_kb=1000, hwm_kb=1500), rec(1.0, rss_kb=1800, hwm_kb=1800), rec(2.0, rss_kb=1200)]
    summary = summarize_window(records, 1)
    assert summary["peak_rss_kb"] == 1800 and summary["max_rss_kb"] == 1800
    assert summarize_window([rec(0.0, hwm_kb=4000, rss_kb=900)], 1)["peak_rss_kb"] == 4000


def test_summary_is_json_without_nan():
    records = [rec(0.0, power_total_w=4.0, thermal_c={"a": 40.0}), rec(0.0, power_total_w=4.0)]
    json.dumps(summarize_window(records, 3), allow_nan=False)
    json.dumps(summarize_window([], 0), allow_nan=False)


def test_records_out_of_order_are_sorted():
    records = [rec(2.0, power_total_w=2.0), rec(0.0, power_total_w=2.0)]
    assert summarize_window(records, 1)["energy_j"] == pytest.approx(4.0)
