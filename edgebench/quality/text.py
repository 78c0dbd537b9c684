"""The token stream a quality test scores: a user's text, or by default one sampled from the reference.

The default needs no download: each chunk starts at BOS and continues with tokens drawn from the
reference model's own distribution (temperature 1, a fixed seed). KLD over it measures how far a
quant departs from the reference where the reference itself puts its mass; it says nothing about
the model's quality on real text, and the reference's PPL over it is near the exponential of its
own entropy, not a language-modelling score.
"""

from __future__ import annotations

import ctypes

import numpy as np

DEFAULT_SEED = 1234


def sampled_tokens(engine, n_ctx: int, n_chunk: int, seed: int = DEFAULT_SEED) -> list[int]:
    """n_chunk * n_ctx tokens sampled from an opened LlamaCppEngine, chunk by chunk."""
    L = engine.L
    rng = np.random.default_rng(seed)
    decoder = engine.chunk_decoder(n_ctx)  # a context of n_ctx tokens
    decoder.close()
    tokens: list[int] = []
    first = engine.bos if engine.bos is not None else 0
    for _ in range(n_chunk):
        L.llama_memory_clear(L.llama_get_memory(engine.ctx), True)
        chunk = [first]
        cell = (ctypes.c_int32 * 1)()
        while len(chunk) < n_ctx:
            cell[0] = chunk[-1]
            if L.llama_decode(engine.ctx, L.llama_batch_get_one(cell, 1)) != 0:
                raise RuntimeError("llama_decode failed while sampling the default text")
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(engine.ctx, -1), shape=(engine.n_vocab,))
            p = np.exp(logits.astype(np.float64) - logits.max())
            chunk.append(int(rng.choice(engine.n_vocab, p=p / p.sum())))
        tokens.extend(chunk)
    return tokens
