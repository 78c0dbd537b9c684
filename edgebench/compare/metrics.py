"""The metrics a gate judges, a registry: how to read each from a sample, and which way is better.

A metric reads one value per timed repetition, because the test compares
distributions of repetitions, not two averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from edgebench.results.records import Sample


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    higher_is_better: bool
    # threshold when neither the CLI nor the profile names one (a fraction)
    default_threshold: float
    # one value from an edgebench sample record (None where the sample lacks it)
    from_sample: Callable[[Sample], float | None]
    # one value per cell that a repetition gives again exactly (a quality score): judged by the
    # threshold alone (compare/point.py)
    deterministic: bool = False


METRICS: dict[str, Metric] = {}


def metric(name, unit, higher_is_better, default_threshold, from_sample, deterministic=False) -> Metric:
    METRICS[name] = found = Metric(name, unit, higher_is_better, default_threshold, from_sample, deterministic)
    return found


def _window(key: str, scale: float = 1.0):
    def read(sample: Sample):
        value = sample.window.get(key)
        return None if value is None else value * scale
    return read


metric("ts", "t/s", True, 0.05, lambda s: s.ts)
metric("ttft", "ms", False, 0.10, lambda s: None if s.ttft_ns is None else s.ttft_ns / 1e6)
metric("peak_rss", "MiB", False, 0.05, _window("peak_rss_kb", 1 / 1024))
metric("j_per_token", "J/token", False, 0.10, _window("j_per_token"))


def _quality(key: str):
    def read(sample: Sample):
        return None if sample.quality is None else getattr(sample.quality, key)
    return read


# a quality test's scores (records.py's QualityScores), lower being better but for same-top
metric("ppl", "PPL", False, 0.01, _quality("ppl"), deterministic=True)
metric("kld_mean", "KLD", False, 0.05, _quality("kld_mean"), deterministic=True)
metric("kld_p99_9", "KLD", False, 0.10, _quality("kld_p99_9"), deterministic=True)
metric("delta_p_rms", "Δp", False, 0.10, _quality("delta_p_rms"), deterministic=True)
metric("same_top_p", "fraction", True, 0.01, _quality("same_top_p"), deterministic=True)


def metric_values(samples: Sequence[Sample]) -> dict[str, tuple[float, ...]]:
    """Each metric every sample has, as one value per sample (a metric some samples lack is left out:
    a partial series would compare different repetitions)."""
    values = {}
    for name, metric in METRICS.items():
        found = [metric.from_sample(s) for s in samples]
        if found and all(v is not None for v in found):
            values[name] = tuple(found)
    return values
