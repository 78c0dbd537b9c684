"""A token stream the controller prepared for a device (the `ppl` default, sampled from the model under
test): the same tokens on every device, so their PPLs compare, whatever each device's logits are.

Layout, little-endian: MAGIC; `<3i` n_ctx, n_chunk, reserved 0; the n_chunk * n_ctx tokens as int32.
"""

from __future__ import annotations

import struct
from array import array
from typing import List, NamedTuple

MAGIC = b"EBQTOK1\n"
_HEADER = struct.Struct("<3i")


class TokenStream(NamedTuple):
    n_ctx: int
    n_chunk: int
    tokens: List[int]


def _little_endian(values: array) -> array:
    if struct.pack("=H", 1) != struct.pack("<H", 1):
        values.byteswap()
    return values


def encode_tokens(stream: TokenStream) -> bytes:
    tokens = _little_endian(array("i", stream.tokens))
    return MAGIC + _HEADER.pack(stream.n_ctx, stream.n_chunk, 0) + tokens.tobytes()


def decode_tokens(data: bytes) -> TokenStream:
    if data[:len(MAGIC)] != MAGIC:
        raise ValueError("not an edgebench token stream (bad magic)")
    n_ctx, n_chunk, _ = _HEADER.unpack_from(data, len(MAGIC))
    body = data[len(MAGIC) + _HEADER.size:]
    tokens = array("i")
    if n_ctx < 4 or n_chunk < 1 or len(body) != n_ctx * n_chunk * tokens.itemsize:
        raise ValueError("a token stream of the wrong length (truncated or corrupt)")
    tokens.frombytes(body)
    return TokenStream(n_ctx, n_chunk, list(_little_endian(tokens)))


def read_tokens(path: str) -> TokenStream:
    with open(path, "rb") as f:
        return decode_tokens(f.read())
