"""The statistics llama-perplexity prints for `--kl-divergence` (tools/perplexity/perplexity.cpp),
from per-token scores, with its formulas: mean ± uncertainty, linearly interpolated percentiles,
RMS Δp and the binomial uncertainty of "same top p".

Each `Summary` key is a result-row field (results/records.py's QualityScores declares them); the
ones llama-perplexity has no name for follow its printed labels (`kld_p99_9` is "99.9% KLD").
"""

from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Tuple

# llama-perplexity prints no final statistics below this many scored tokens; edgebench still reports
# them (a short check on a device is useful) and says how many tokens they rest on (`n_scored`)
LLAMA_PERPLEXITY_MIN_TOKENS = 100


class TokenScore(NamedTuple):
    """One scored token: the model's negative log-likelihood of the actual next token, and, against a
    reference, the reference's NLL, the KL divergence, Δp = p(tok) - p_ref(tok) and whether the two
    argmaxes agree (None without a reference)."""

    nll: float
    nll_base: Optional[float] = None
    kld: Optional[float] = None
    p_diff: Optional[float] = None
    same_top: Optional[bool] = None


def mean_and_uncertainty(total: float, total2: float, count: int) -> Tuple[float, float]:
    """llama-perplexity's `mean_and_uncertainty`: the mean and the standard error of the mean, 0 below 11 values."""
    if count < 1:
        return 0.0, 0.0
    mean = total / count
    var = total2 / count - mean * mean
    return mean, (math.sqrt(var / (count - 1)) if var > 0 and count > 10 else 0.0)


def percentile(ordered: List[float], fraction: float) -> float:
    """llama-perplexity's percentile of sorted values: linear interpolation at fraction * (n - 1)."""
    if fraction <= 0:
        return ordered[0]
    if fraction >= 1:
        return ordered[-1]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    weight = position - low
    return (1 - weight) * ordered[low] + weight * ordered[min(low + 1, len(ordered) - 1)]


def _covariance(sum_a: float, sum_b: float, sum_ab: float, count: int) -> float:
    if count < 10:
        return 0.0
    return (sum_ab / count - (sum_a / count) * (sum_b / count)) / (count - 1)


def summarize(scores: List[TokenScore]) -> dict:
    """The summary of a run's scored tokens: PPL always; against a reference, the rest as well."""
    count = len(scores)
    if not count:
        raise ValueError("no token was scored")
    nll = [s.nll for s in scores]
    log_ppl, log_ppl_unc = mean_and_uncertainty(math.fsum(nll), math.fsum(v * v for v in nll), count)
    ppl = math.exp(log_ppl)
    found = {"ppl": ppl, "ppl_stderr": ppl * log_ppl_unc, "n_scored": count}
    if scores[0].kld is None:
        return found
    base = [s.nll_base for s in scores]
    log_base, log_base_unc = mean_and_uncertainty(math.fsum(base), math.fsum(v * v for v in base), count)
    cov = _covariance(math.fsum(nll), math.fsum(base), math.fsum(a * b for a, b in zip(nll, base)), count)
    ratio = math.exp(log_ppl - log_base)
    ratio_unc = math.sqrt(max(0.0, log_ppl_unc ** 2 + log_base_unc ** 2 - 2 * cov))
    kld = sorted(s.kld for s in scores)
    kld_mean, kld_unc = mean_and_uncertainty(math.fsum(kld), math.fsum(v * v for v in kld), count)
    p_diff2 = [s.p_diff * s.p_diff for s in scores]
    mse, mse_unc = mean_and_uncertainty(math.fsum(p_diff2), math.fsum(v * v for v in p_diff2), count)
    rms = math.sqrt(mse)
    same = sum(1 for s in scores if s.same_top) / count
    found.update({
        "ppl_base": math.exp(log_base), "ppl_ratio": ratio, "ppl_ratio_stderr": ratio * ratio_unc,
        "kld_mean": kld_mean, "kld_stderr": kld_unc, "kld_median": percentile(kld, 0.5),
        "kld_p99": percentile(kld, 0.99), "kld_p99_9": percentile(kld, 0.999), "kld_max": kld[-1],
        "delta_p_rms": rms, "delta_p_rms_stderr": 0.5 / rms * mse_unc if rms else 0.0,
        "same_top_p": same,
        "same_top_p_stderr": math.sqrt(same * (1 - same) / (count - 1)) if count > 1 else 0.0,
    })
    return found
