"""Summarise the telemetry records of one timed window (pure: records in, dict out)."""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

Series = List[Tuple[float, float]]


def summarize_window(records: Sequence[dict], n_tokens: Optional[int], *, throttle_ratio: float = 0.9,
                     max_temp_c: Optional[float] = None, t0: Optional[float] = None,
                     t1: Optional[float] = None) -> dict:
    """One window's summary. A value with nothing to base it on is None, never 0.

    - `n_records`, `duration_s`: how many records and the time they span.
    - `max_temp_c`: hottest reading over all zones and records. A max is immune to
      sensors parked at impossible lows (Orin Nano's absent DLA zones read -256).
    - `min_freq_ratio`: lowest cur/max over all cpufreq policies and records.
      Caveat: an idle cluster (fewer threads than cores, big.LITTLE) or an Intel
      all-core load below single-core turbo also sit below 1.0 without throttling.
    - `throttled` / `throttle_reasons`: "freq_ratio" when min_freq_ratio <
      throttle_ratio, "scaling_max" when a policy's scaling_max is below its
      hardware max (thermal daemon or power mode capping it), "temp" when a zone
      reached `max_temp_c`. None when there is neither cpufreq data nor a
      temperature limit with readings to compare.
    - `energy_j` / `energy_source`: from RAPL counters ("rapl": psys if present,
      else the sum of packages; wrap-aware, summed pair by pair so several wraps
      in a long window are fine) or else from integrating `power_total_w` with the
      trapezoid rule ("power"). None with fewer than two readings.
    - `avg_power_w`: energy_j over the span it was measured on.
    - `j_per_token`: energy_j / n_tokens.
    - `peak_rss_kb`: highest VmHWM (or VmRSS) seen. VmHWM is the process's
      lifetime peak, so for a long-lived engine it can predate the window;
      `max_rss_kb` is the highest VmRSS sampled inside it.

    `t0`/`t1`, when given, are the window's exact bounds: energy is then
    interpolated to them (assuming steady power between readings) instead of
    covering the bracketing records' whole span.
    """
    records = sorted(records, key=lambda r: r["t"])
    temps = [c for r in records for c in (r.get("thermal_c") or {}).values()]
    hottest = max(temps) if temps else None
    ratio, capped, have_freq = _frequency(records)
    reasons = []
    if ratio is not None and ratio < throttle_ratio:
        reasons.append("freq_ratio")
    if capped:
        reasons.append("scaling_max")
    if max_temp_c is not None and hottest is not None and hottest >= max_temp_c:
        reasons.append("temp")
    judged = have_freq or (max_temp_c is not None and hottest is not None)

    energy, source, span = _energy(records, t0, t1)
    rss = [r["rss_kb"] for r in records if r.get("rss_kb") is not None]
    peaks = rss + [r["hwm_kb"] for r in records if r.get("hwm_kb") is not None]
    return {
        "n_records": len(records),
        "duration_s": records[-1]["t"] - records[0]["t"] if records else None,
        "max_temp_c": hottest,
        "min_freq_ratio": ratio,
        "throttled": bool(reasons) if judged else None,
        "throttle_reasons": reasons if judged else None,
        "energy_j": energy,
        "energy_source": source,
        "avg_power_w": energy / span if energy is not None and span > 0 else None,
        "j_per_token": energy / n_tokens if energy is not None and n_tokens else None,
        "peak_rss_kb": max(peaks) if peaks else None,
        "max_rss_kb": max(rss) if rss else None,
    }


def counter_delta(previous: int, current: int, limit: Optional[int]) -> Optional[int]:
    """Increase of a counter that restarts from 0 after reaching `limit`; None if unknowable."""
    if current >= previous:
        return current - previous
    if limit is None or previous > limit:
        return None
    return limit - previous + current


def _frequency(records: Sequence[dict]):
    ratio, capped, seen = None, False, False
    for record in records:
        for policy in (record.get("cpufreq_khz") or {}).values():
            top = policy.get("max")
            if not top:
                continue
            seen = True
            if policy.get("cur") is not None:
                r = policy["cur"] / top
                ratio = r if ratio is None else min(ratio, r)
            if policy.get("scaling_max") is not None and policy["scaling_max"] < top:
                capped = True
    return ratio, capped, seen


def _energy(records, t0, t1):
    """(joules, source, seconds covered) from the best source, or (None, None, 0)."""
    series = _rapl_series(records)
    source = "rapl"
    if not series:
        power = [(r["t"], r["power_total_w"]) for r in records if r.get("power_total_w") is not None]
        series = [_integrate(power)] if len(power) >= 2 else []
        source = "power"
    covered = [c for c in (_between(cumulative, t0, t1) for cumulative in series) if c is not None]
    if not covered:
        return None, None, 0.0
    return sum(j for j, _ in covered), source, max(s for _, s in covered)


def _rapl_series(records) -> List[Series]:
    """Cumulative joules over time per chosen RAPL domain."""
    domains = set()
    for record in records:
        domains.update(record.get("energy_uj") or {})
    # psys is the whole platform and already contains the package(s)
    chosen = ["psys"] if "psys" in domains else sorted(domains)
    result = []
    for domain in chosen:
        points = [(r["t"], r["energy_uj"][domain], (r.get("energy_range_uj") or {}).get(domain))
                  for r in records if domain in (r.get("energy_uj") or {})]
        if len(points) < 2:
            continue
        cumulative, total = [(points[0][0], 0.0)], 0.0
        for (_, before, _), (t, after, limit) in zip(points, points[1:]):
            delta = counter_delta(before, after, limit)
            if delta is None:
                # a backwards jump we cannot unwrap: any figure would be invented
                cumulative = []
                break
            total += delta / 1e6
            cumulative.append((t, total))
        if len(cumulative) >= 2:
            result.append(cumulative)
    return result


def _integrate(power: Series) -> Series:
    cumulative, total = [(power[0][0], 0.0)], 0.0
    for (ta, pa), (tb, pb) in zip(power, power[1:]):
        total += (pa + pb) / 2.0 * (tb - ta)
        cumulative.append((tb, total))
    return cumulative


def _between(cumulative: Series, t0, t1) -> Optional[Tuple[float, float]]:
    """(joules, seconds) accumulated between t0 and t1, clamped to the measured span;
    None when the window and the measurements do not overlap."""
    first, last = cumulative[0][0], cumulative[-1][0]
    a = first if t0 is None else max(t0, first)
    b = last if t1 is None else min(t1, last)
    if b <= a:
        return None
    return _at(cumulative, b) - _at(cumulative, a), b - a


def _at(cumulative: Series, t: float) -> float:
    for (ta, ea), (tb, eb) in zip(cumulative, cumulative[1:]):
        if ta <= t <= tb:
            return ea if tb == ta else ea + (eb - ea) * (t - ta) / (tb - ta)
    return cumulative[-1][1]

