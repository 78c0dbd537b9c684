"""The quality statistics and the compact reference, against values worked out by hand on small
distributions (llama-perplexity's formulas, tools/perplexity/perplexity.cpp)."""

from __future__ import annotations

import math
from array import array

import pytest

from edgebench.runner.scoring.reference_file import Reference, ScoredToken, decode, encode
from edgebench.runner.scoring.stats import TokenScore, percentile, summarize
from edgebench.runner.scoring.token_score import score_token

LN2 = math.log(2)


def logits_of(probs, shift=3.0):
    """Logits whose softmax is probs (shifted: a model's logits are not log-probs)."""
    return array("f", [math.log(p) + shift for p in probs])


def entry(probs, token, n_head=None, draws=()):
    """A reference entry with the n_head most likely tokens, then the given draws from the rest."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])[:n_head or len(probs)]
    rest = 1 - sum(probs[i] for i in order)
    ids = order + list(draws)
    return ScoredToken(math.log(probs[token]), math.log(rest) if rest > 1e-12 else float("-inf"), ids,
                       [math.log(probs[i]) for i in ids], len(order))


def test_a_token_against_a_full_reference_scores_as_by_hand():
    # p_ref = (1/2, 1/4, 1/4), q = (1/4, 1/2, 1/4): KLD = 1/2 ln 2 + 1/4 ln(1/2) + 0 = ln2 / 4
    score = score_token(logits_of([0.25, 0.5, 0.25]), 1, entry([0.5, 0.25, 0.25], 1))
    assert score.kld == pytest.approx(LN2 / 4, abs=1e-6)
    assert score.nll == pytest.approx(LN2, abs=1e-6)  # -ln q(1)
    assert score.nll_base == pytest.approx(2 * LN2, abs=1e-6)  # -ln p_ref(1)
    assert score.p_diff == pytest.approx(0.25, abs=1e-6)  # 1/2 - 1/4
    assert score.same_top is False  # the reference's top is 0, the model's 1


def test_identical_distributions_score_zero_and_agree_on_the_top():
    probs = [0.7, 0.2, 0.1]
    score = score_token(logits_of(probs, shift=-5), 0, entry(probs, 0))
    assert score.kld == pytest.approx(0, abs=1e-6) and score.p_diff == pytest.approx(0, abs=1e-6)
    assert score.same_top is True


def test_the_rest_is_estimated_from_draws_weighted_by_its_mass():
    # head {0}; the rest (mass 1/2) is tokens 1 and 2 with 1/4 each; one draw of each is the rest exactly
    p, q = [0.5, 0.25, 0.25], [0.5, 0.125, 0.375]
    exact = 0.25 * math.log(0.25 / 0.125) + 0.25 * math.log(0.25 / 0.375)
    drawn = score_token(logits_of(q), 0, entry(p, 0, n_head=1, draws=(1, 2)))
    assert drawn.kld == pytest.approx(exact, abs=1e-6)
    # one draw of token 1 alone (r = q/p = 1/2): p_rest (r - 1 - ln r) + p_rest - q_rest = 1/2 (ln 2 - 1/2) + 0
    assert score_token(logits_of(q), 0, entry(p, 0, n_head=1, draws=(1,))).kld == pytest.approx(
        0.5 * (LN2 - 0.5), abs=1e-6)
    # no draws: the rest as one outcome, p_rest ln(p_rest / q_rest) = 0 here (both 1/2)
    assert score_token(logits_of(q), 0, entry(p, 0, n_head=1)).kld == pytest.approx(0, abs=1e-6)


def test_entries_below_llama_perplexitys_floor_do_not_count():
    p = [1 - 2e-8, 1e-8, 1e-8]  # log 1e-8 = -18.4 < -16
    q = [0.5, 0.25, 0.25]
    score = score_token(logits_of(q), 0, entry(p, 0))
    assert score.kld == pytest.approx((1 - 2e-8) * math.log((1 - 2e-8) / 0.5), abs=1e-6)


def test_percentiles_interpolate_linearly_and_the_median_averages_the_middle_pair():
    values = [0.0, 1.0, 2.0, 10.0]
    assert percentile(values, 0.5) == pytest.approx(1.5)
    assert percentile(values, 0.99) == pytest.approx(2 + 0.97 * 8)  # position 2.97
    assert percentile(values, 0) == 0 and percentile(values, 1) == 10


def test_the_summary_is_llama_perplexitys():
    # 20 tokens: KLD 0.00, 0.01, ..., 0.19; NLL alternating 1 and 3 (base 2); Δp ±0.1; 15 of 20 same top
    scores = [TokenScore(nll=1.0 if i % 2 else 3.0, nll_base=2.0, kld=i / 100, p_diff=0.1 if i % 2 else -0.1,
                         same_top=i < 15) for i in range(20)]
    found = summarize(scores)
    assert found["n_scored"] == 20
    # mean NLL 2, its variance 1 (population), uncertainty sqrt(1 / 19)
    assert found["ppl"] == pytest.approx(math.exp(2))
    assert found["ppl_stderr"] == pytest.approx(math.exp(2) * math.sqrt(1 / 19))
    assert found["ppl_ratio"] == pytest.approx(1.0)
    assert found["kld_mean"] == pytest.approx(0.095)
    assert found["kld_median"] == pytest.approx(0.095)  # (0.09 + 0.10) / 2
    assert found["kld_p99"] == pytest.approx(0.18 + 0.81 * 0.01)  # position 0.99 * 19 = 18.81
    assert found["kld_p99_9"] == pytest.approx(0.18 + 0.981 * 0.01)
    assert found["kld_max"] == pytest.approx(0.19)
    assert found["delta_p_rms"] == pytest.approx(0.1)
    assert found["same_top_p"] == pytest.approx(0.75)
    assert found["same_top_p_stderr"] == pytest.approx(math.sqrt(0.75 * 0.25 / 19))


def test_a_ppl_summary_has_no_reference_fields():
    found = summarize([TokenScore(nll=LN2)] * 12)
    assert found == {"ppl": pytest.approx(2.0), "ppl_stderr": 0.0, "n_scored": 12}


def test_a_reference_file_round_trips_and_refuses_a_truncated_one():
    n_ctx = 8  # 3 scored tokens per chunk
    scored = [entry([0.5, 0.25, 0.25], i % 3, n_head=2, draws=(2,)) for i in range(6)]
    reference = Reference(n_ctx, 3, 2, 2, 1, list(range(16)), scored)
    data = encode(reference)
    back = decode(data)
    assert list(back.tokens) == list(range(16)) and (back.n_head, back.n_tail, back.n_chunk) == (2, 1, 2)
    assert [list(t.ids) for t in back.scored] == [list(t.ids) for t in scored]
    assert back.scored[1].log_p_tok == pytest.approx(scored[1].log_p_tok, abs=1e-6)
    with pytest.raises(ValueError, match="wrong length"):
        decode(data[:-3])


