"""One scored token: a model's logits for a position against the reference's entry for it.

A pass over the whole vocabulary is what costs: the in-process llama.cpp engine hands each row's argmax
and log Σ exp computed in C (engines/llama_scoring.py); without them, the two passes below use builtins
over a memoryview. Everything else touches only the reference's few entries.
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


def score_token(row, token: int, reference: Optional[ScoredToken], summary=None) -> TokenScore:
    """`summary`: the row's (argmax token, log Σ exp) when the engine computed them (in C); else here."""
    if summary is None:
        top, lse = log_sum_exp(row)
    else:
        top, lse = row[summary[0]], summary[1]
    nll = lse - row[token]
    if reference is None:
        return TokenScore(nll=nll)
    return TokenScore(nll=nll, nll_base=-reference.log_p_tok, kld=_kld(row, lse, reference),
                      p_diff=math.exp(-nll) - math.exp(reference.log_p_tok), same_top=row[reference.ids[0]] >= top)


def _kld(row, lse: float, reference: ScoredToken) -> float:
    """The head's terms exactly, as llama-perplexity sums them; the rest estimated from the draws.

    Over the rest, KLD = Σ p (r - 1 - log r) + (p_rest - q_rest) with r = q/p: the second term is known
    exactly here (q_rest is 1 minus the model's mass on the head), and the first is a mean of
    non-negative terms of the size of the KLD itself, so a few draws estimate it closely. (Averaging
    log p - log q over the draws instead is unbiased too, but each of its terms is about the square
    root of the KLD: hopeless for a quant whose KLD is 1e-4.)"""
    n_head = reference.n_head
    ids, log_probs = reference.ids, reference.log_probs
    kld = 0.0
    q_head = 0.0
    for i in range(n_head):
        log_q = row[ids[i]] - lse
        q_head += math.exp(log_q)
        if log_probs[i] > LOG_PROB_FLOOR:
            kld += math.exp(log_probs[i]) * (log_probs[i] - log_q)
    p_rest = math.exp(reference.log_rest)
    if p_rest <= 0:
        return kld
    q_rest = max(1.0 - q_head, 1e-300)
    n_tail = len(ids) - n_head
    if not n_tail:  # no draws: the rest as one outcome, a lower bound (the log-sum inequality)
        return kld + p_rest * (reference.log_rest - math.log(q_rest))
    spread = 0.0
    for i in range(n_head, len(ids)):
        log_r = row[ids[i]] - lse - log_probs[i]
        spread += math.expm1(log_r) - log_r
    return kld + p_rest * spread / n_tail + p_rest - q_rest
