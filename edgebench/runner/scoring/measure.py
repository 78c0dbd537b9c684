"""A quality test on the device: the chunks decoded, each scored position scored, timed as one whole.

`ppl` scores the model's own NLL of a text: the user's text tokenized here by the model's own
tokenizer, or the reference's tokens when the profile has a reference, or else the tokens the controller
sampled from the model itself (tokens_file.py). `kld` scores against the compact reference
(reference_file.py), whose tokens it uses.
"""

from __future__ import annotations

import time

from ..protocol import RunnerFailure
from .reference_file import read_reference
from .stats import summarize
from .token_score import score_token
from .tokens_file import read_tokens

# what a quality job carries (job["quality"]), besides which kind its test is
JOB_KEYS = ("n_ctx", "chunks", "reference", "text", "tokens")


def job_quality(job, test_kind):
    """The job's `quality` entry, checked."""
    quality = job.get("quality")
    if not isinstance(quality, dict) or sorted(quality) != sorted(JOB_KEYS):
        raise RunnerFailure("job", "a %s test needs job.quality with %s" % (test_kind, ", ".join(JOB_KEYS)))
    return quality


def _tokens(engine, job, test_kind):
    """(tokens, n_ctx, n_chunk, reference or None) for the job."""
    quality = job_quality(job, test_kind)
    reference = read_reference(quality["reference"]) if quality["reference"] else None
    if test_kind == "kld":
        if reference is None:
            raise RunnerFailure("job", "a kld test needs a reference")
        if reference.n_vocab != engine.n_vocab:
            raise RunnerFailure("quality", "the model's vocabulary (%d tokens) is not the reference's (%d): "
                                "KLD cannot compare models with different tokenizers"
                                % (engine.n_vocab, reference.n_vocab))
        return reference.tokens, reference.n_ctx, reference.n_chunk, reference
    n_ctx = quality["n_ctx"]
    if quality["text"]:
        with open(quality["text"], "rb") as f:
            tokens = engine.tokenize(f.read())
    elif reference is not None:
        tokens = reference.tokens
    elif quality["tokens"]:
        tokens = read_tokens(quality["tokens"]).tokens
    else:
        raise RunnerFailure("job", "a ppl test needs a text, a reference or sampled tokens")
    if len(tokens) < 2 * n_ctx:
        raise RunnerFailure("quality", "the text is %d tokens; perplexity with n_ctx %d needs at least %d "
                            "(as llama-perplexity)" % (len(tokens), n_ctx, 2 * n_ctx))
    return tokens, n_ctx, min(quality["chunks"], len(tokens) // n_ctx), None


def measure_quality(engine, job, test_kind, mark):
    """(elapsed ns, tokens decoded, summary) of one pass over every chunk."""
    tokens, n_ctx, n_chunk, reference = _tokens(engine, job, test_kind)
    decoder = engine.chunk_decoder(n_ctx)
    per_chunk = n_ctx - 1 - n_ctx // 2
    scores = []
    try:
        mark()
        start = time.perf_counter_ns()
        for group in range(0, n_chunk, decoder.n_seq):
            chunks = [tokens[c * n_ctx:(c + 1) * n_ctx] for c in range(group, min(group + decoder.n_seq, n_chunk))]
            for s, pos, row, summary in decoder.rows(chunks):
                entry = reference.scored[(group + s) * per_chunk + pos - n_ctx // 2] if reference else None
                scores.append((group + s, pos, score_token(row, chunks[s][pos + 1], entry, summary)))
        elapsed = time.perf_counter_ns() - start
        mark()
    finally:
        decoder.close()
    # in the order of the text, whatever order the decodes gave them in
    return elapsed, n_chunk * n_ctx, summarize([score for _, _, score in sorted(scores, key=lambda s: s[:2])])
