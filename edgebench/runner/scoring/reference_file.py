"""The compact reference a device scores a quant against, in one content-addressed file.

llama-perplexity's base file holds every scored token's whole distribution (about 2 bytes per
vocabulary entry). This holds, per scored token, what KLD, Δp, same-top and NLL need:

- the reference's log-prob of the actual next token (its NLL, Δp);
- the `n_head` most likely tokens with their log-probs, the first being the argmax (same-top);
- the log of the mass outside the head, and `n_tail` tokens drawn from that rest in proportion to
  their probability, with their log-probs: the device's KLD is the head's terms exactly plus an
  unbiased estimate of the rest's (the rest's mass times the mean of log p_ref - log q over the draws).

Layout, little-endian: MAGIC; `<7i` n_ctx, n_vocab, n_chunk, n_head, n_tail, id_bytes (2 or 4),
reserved 0; the n_chunk * n_ctx tokens (ids); then per scored token `<ff` (log p_ref(tok), log rest
mass), the n_head + n_tail ids, then their log-probs as float32.
"""

from __future__ import annotations

import struct
from array import array
from typing import List, NamedTuple, Sequence

MAGIC = b"EBQREF1\n"
_HEADER = struct.Struct("<7i")
_PAIR = struct.Struct("<ff")
_ID_TYPES = {2: "H", 4: "I"}


class ScoredToken(NamedTuple):
    log_p_tok: float
    log_rest: float
    ids: Sequence[int]  # head first (ids[0] is the argmax), then the draws from the rest
    log_probs: Sequence[float]
    n_head: int  # how many of ids are the head; the rest are draws


class Reference(NamedTuple):
    n_ctx: int
    n_vocab: int
    n_chunk: int
    n_head: int
    n_tail: int
    tokens: Sequence[int]
    scored: List[ScoredToken]  # chunk after chunk, scored_per_chunk(n_ctx) each


def scored_per_chunk(n_ctx: int) -> int:
    """llama-perplexity scores positions n_ctx/2 .. n_ctx-2, each predicting the next token."""
    return n_ctx - 1 - n_ctx // 2


def id_bytes(n_vocab: int) -> int:
    return 2 if n_vocab <= 0x10000 else 4


def _packed(typecode: str, values) -> bytes:
    found = array(typecode, values)
    if struct.pack("=H", 1) != struct.pack("<H", 1):
        found.byteswap()
    return found.tobytes()


def encode(reference: Reference) -> bytes:
    size = id_bytes(reference.n_vocab)
    parts = [MAGIC, _HEADER.pack(reference.n_ctx, reference.n_vocab, reference.n_chunk, reference.n_head,
                                 reference.n_tail, size, 0),
             _packed(_ID_TYPES[size], reference.tokens)]
    for token in reference.scored:
        parts += [_PAIR.pack(token.log_p_tok, token.log_rest), _packed(_ID_TYPES[size], token.ids),
                  _packed("f", token.log_probs)]
    return b"".join(parts)


def decode(data: bytes) -> Reference:
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError("not an edgebench quality reference (bad magic)")
    offset = len(MAGIC)
    n_ctx, n_vocab, n_chunk, n_head, n_tail, size, _ = _HEADER.unpack_from(data, offset)
    offset += _HEADER.size
    if size not in _ID_TYPES or n_ctx < 4 or n_chunk < 1:
        raise ValueError("a quality reference with an impossible header")
    n_tokens = n_ctx * n_chunk
    tokens = _unpacked(_ID_TYPES[size], data, offset, n_tokens)
    offset += n_tokens * size
    n_entries = n_head + n_tail
    scored = []
    for _ in range(n_chunk * scored_per_chunk(n_ctx)):
        log_p_tok, log_rest = _PAIR.unpack_from(data, offset)
        offset += _PAIR.size
        ids = _unpacked(_ID_TYPES[size], data, offset, n_entries)
        offset += n_entries * size
        log_probs = _unpacked("f", data, offset, n_entries)
        offset += n_entries * 4
        scored.append(ScoredToken(log_p_tok, log_rest, ids, log_probs, n_head))
    if offset != len(data):
        raise ValueError("a quality reference of the wrong length (truncated or corrupt)")
    return Reference(n_ctx, n_vocab, n_chunk, n_head, n_tail, tokens, scored)


def _unpacked(typecode: str, data: bytes, offset: int, count: int) -> array:
    found = array(typecode)
    end = offset + count * found.itemsize
    if end > len(data):
        raise ValueError("a quality reference of the wrong length (truncated or corrupt)")
    found.frombytes(data[offset:end])
    if struct.pack("=H", 1) != struct.pack("<H", 1):
        found.byteswap()
    return found


def read_reference(path: str) -> Reference:
    with open(path, "rb") as f:
        return decode(f.read())
