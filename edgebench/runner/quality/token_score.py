"""One scored token: a model's logits for a position against the reference's entry for it.

Pure Python over the whole vocabulary costs: the two passes below (max, then the sum of exponentials)
use builtins over a memoryview, so the per-entry work stays in C; everything else touches only the
reference's few entries.
"""

from __future__ import annotations

import math
from typing import Optional

from .reference_file import ScoredToken
from .stats import TokenScore

# llama-perplexity's KLD sums only over entries whose reference log-prob is above this
LOG_PROB_FLOOR = -16.0
_EXP_SAFE = 700.0  # exp() of a double overflows past ~709


def log_sum_exp(row) -> tuple:
    """(max, log Σ exp) of a row of logits."""
    top = max(row)
    if -_EXP_SAFE < top < _EXP_SAFE:
        # exp(x) without subtracting the max: doubles hold it, and map(exp) stays in C
        return top, math.log(sum(map(math.exp, row)))
    shift = [x - top for x in row]
    return top, top + math.log(sum(map(math.exp, shift)))


def score_token(row, token: int, reference: Optional[ScoredToken]) -> TokenScore:
    top, lse = log_sum_exp(row)
    nll = lse - row[token]
    if reference is None:
        return TokenScore(nll=nll)
    n_entries = len(reference.ids)
    n_tail = n_entries - reference.n_head
    kld_head = 0.0
    kld_tail = 0.0
    for i, (tok, lp_ref) in enumerate(zip(reference.ids, reference.log_probs)):
        if lp_ref <= LOG_PROB_FLOOR:
            continue
        term = lp_ref - (row[tok] - lse)
        if i < reference.n_head:
            kld_head += math.exp(lp_ref) * term
        else:
            kld_tail += term
    if n_tail:
        kld_head += math.exp(reference.log_rest) * kld_tail / n_tail
    p_diff = math.exp(-nll) - math.exp(reference.log_p_tok)
    return TokenScore(nll=nll, nll_base=-reference.log_p_tok, kld=kld_head, p_diff=p_diff,
                      same_top=row[reference.ids[0]] >= top)

