"""Verdicts for deterministic metrics: a quality test's scores (PPL, KLD) are one value per cell that
a repetition would give again exactly, so there is no distribution to test; the change is judged
against the threshold alone. A KLD that jumps is `regressed`, however fast the build got."""

from __future__ import annotations

from edgebench.compare.stats import Decision

# keeps a ratio finite where the base is 0 (a quant scored against itself has KLD 0)
FLOOR = 1e-6


def decide_point(base: float, cand: float, higher_is_better: bool, threshold: float) -> Decision:
    ratio = (cand + FLOOR) / (base + FLOOR)
    worse = ratio < 1 if higher_is_better else ratio > 1
    change = abs(ratio - 1)
    if change <= threshold:
        verdict, reason = "same", f"{change:.1%} change, within the {threshold:.0%} threshold (deterministic score)"
    else:
        verdict = "regressed" if worse else "improved"
        reason = (f"{change:.1%} {'higher' if ratio > 1 else 'lower'} ({'worse' if worse else 'better'}), beyond the "
                  f"{threshold:.0%} threshold (deterministic score: no repetitions to test)")
    return Decision(verdict, ratio, ratio, ratio, 0.0, 1, 1, reason)
