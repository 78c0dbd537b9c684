"""The compact reference (runner/scoring/reference_file.py), computed once on the controller from the
reference model's full logits, cached by content and pushed to devices like a model.

The entries per scored token are sized from llama-perplexity's base file: the whole reference stays
within REFERENCE_BUDGET of it (the tokens included), half head, half draws from the rest, at most
MAX_HEAD + MAX_TAIL. What truncation costs is measured by tests/perf/quality_fidelity.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgebench.outputs import write_whole
from edgebench.paths import cache_root
from edgebench.runner.scoring.reference_file import (
    Reference,
    ScoredToken,
    encode,
    id_bytes,
    scored_per_chunk,
)

FORMAT = 1
REFERENCE_BUDGET = 0.015  # of llama-perplexity's base file
MAX_HEAD, MAX_TAIL = 64, 64
DRAW_SEED = 4321


def base_file_bytes(n_vocab: int, n_ctx: int, n_chunk: int) -> int:
    """The size of llama-perplexity's --kl-divergence-base file for the same text."""
    nv = 2 * ((n_vocab + 1) // 2) + 4
    return 8 + 12 + 4 * n_ctx * n_chunk + 2 * nv * n_chunk * scored_per_chunk(n_ctx)


def entry_counts(n_vocab: int, n_ctx: int) -> tuple[int, int]:
    """(n_head, n_tail) that keep a reference within REFERENCE_BUDGET of the base file."""
    size = id_bytes(n_vocab)
    per_scored = REFERENCE_BUDGET * base_file_bytes(n_vocab, n_ctx, 1) / scored_per_chunk(n_ctx)
    tokens = size * n_ctx / scored_per_chunk(n_ctx)
    n = max(2, int((per_scored - 8 - tokens) // (size + 4)))
    n_head = min(MAX_HEAD, (n + 1) // 2)
    return n_head, min(MAX_TAIL, n - n_head)


def reference_dir() -> Path:
    return cache_root() / "quality"


def reference_key(model_sha256: str, tokens_key: str, n_ctx: int, n_chunk: int) -> str:
    text = json.dumps({"format": FORMAT, "model": model_sha256, "tokens": tokens_key, "n_ctx": n_ctx,
                       "n_chunk": n_chunk, "budget": REFERENCE_BUDGET, "max": [MAX_HEAD, MAX_TAIL],
                       "seed": DRAW_SEED}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _entry(log_probs: np.ndarray, token: int, n_head: int, n_tail: int, rng) -> ScoredToken:
    order = np.argpartition(-log_probs, n_head)[:n_head] if n_head < len(log_probs) else np.arange(len(log_probs))
    head = order[np.argsort(-log_probs[order], kind="stable")]
    # the argmax first, as llama-perplexity finds it (the first of equal maxima)
    top = int(np.argmax(log_probs))
    if head[0] != top:
        head = np.concatenate(([top], head[head != top]))[:n_head]
    rest = np.ones(len(log_probs), bool)
    rest[head] = False
    p_rest = np.exp(log_probs[rest].astype(np.float64))
    mass = float(p_rest.sum())
    tail = np.array([], dtype=np.int64)
    if n_tail and mass > 0:
        tail = np.flatnonzero(rest)[rng.choice(len(p_rest), size=n_tail, p=p_rest / mass)]
    ids = np.concatenate((head, tail)).astype(np.int64)
    return ScoredToken(float(log_probs[token]), float(np.log(mass)) if mass > 0 else float("-inf"),
                       [int(i) for i in ids], [float(v) for v in log_probs[ids]], len(head))


def compute_reference(engine, tokens: list[int], n_ctx: int, n_chunk: int) -> Reference:
    """The reference from an opened LlamaCppEngine over tokens (n_chunk chunks of n_ctx)."""
    n_head, n_tail = entry_counts(engine.n_vocab, n_ctx)
    rng = np.random.default_rng(DRAW_SEED)
    decoder = engine.chunk_decoder(n_ctx)
    scored = []
    try:
        for group in range(0, n_chunk, decoder.n_seq):
            chunks = [tokens[c * n_ctx:(c + 1) * n_ctx] for c in range(group, min(group + decoder.n_seq, n_chunk))]
            found = {}
            for s, pos, row, _ in decoder.rows(chunks):
                logits = np.frombuffer(row, dtype=np.float32).astype(np.float64)
                log_probs = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
                found[(s, pos)] = _entry(log_probs, chunks[s][pos + 1], n_head, n_tail, rng)
            scored += [found[key] for key in sorted(found)]  # in the order of the text
    finally:
        decoder.close()
    return Reference(n_ctx, engine.n_vocab, n_chunk, n_head, n_tail, list(tokens[:n_chunk * n_ctx]), scored)


def write_cached(key: str, reference: Reference) -> Path:
    return write_cached_bytes(reference_dir() / f"{key}.ebqref", encode(reference))


def write_cached_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_whole(path, data)  # whole or not at all: another controller may read it
