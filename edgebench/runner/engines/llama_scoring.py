"""Logits of every scored position of llama-perplexity's chunks, straight from llama.cpp's buffer.

Chunks are decoded as llama-perplexity decodes them: n_seq = n_batch / n_ctx chunks side by side in one
batch, each its own sequence (so one decode fills the threads as well as its does), the KV cache cleared
first, BOS in place of each chunk's first token, pieces of at most n_batch tokens, and logits kept only
for positions from n_ctx/2 on. Each row is a memoryview over llama.cpp's own float buffer (no copy),
valid until the next decode, so the caller scores each row before asking for the next.
"""

from __future__ import annotations

import ctypes

from ..protocol import RunnerFailure


def sequences_per_batch(n_batch: int, n_ctx: int) -> int:
    """llama-perplexity's n_seq: how many chunks one batch holds."""
    return max(1, n_batch // n_ctx)


class ChunkDecoder:
    def __init__(self, L, ctx, n_vocab: int, n_batch: int, n_seq: int, bos):
        self.L, self.ctx, self.n_vocab, self.n_batch, self.bos = L, ctx, n_vocab, n_batch, bos
        self.n_seq = n_seq
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.row_type = ctypes.c_float * n_vocab

    def rows(self, chunks):
        """(chunk index, position, row) for each position p >= n_ctx // 2 but the last of each of `chunks`
        (at most n_seq of one length); the row predicts chunk[p + 1]."""
        L, ctx = self.L, self.ctx
        n_ctx = len(chunks[0])
        first = n_ctx // 2
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        # llama-perplexity's order: position-major pieces when a chunk spans several batches, else
        # chunk after chunk in one batch
        entries = [(s, pos) for s in range(len(chunks)) for pos in range(n_ctx)]
        for start in range(0, len(entries), self.n_batch):
            piece = entries[start:start + self.n_batch]
            self._fill(piece, chunks, first)
            rc = L.llama_decode(ctx, self.batch)
            if rc != 0:
                raise RunnerFailure("engine", "llama_decode returned %d while scoring (out of memory?)" % rc)
            for k, (s, pos) in enumerate(piece):
                if first <= pos < n_ctx - 1:
                    address = ctypes.cast(L.llama_get_logits_ith(ctx, k), ctypes.c_void_p).value
                    yield s, pos, memoryview(self.row_type.from_address(address)).cast("B").cast("f")

    def _fill(self, piece, chunks, first):
        batch = self.batch
        batch.n_tokens = len(piece)
        for k, (s, pos) in enumerate(piece):
            batch.token[k] = self.bos if (pos == 0 and self.bos is not None) else chunks[s][pos]
            batch.pos[k] = pos
            batch.n_seq_id[k] = 1
            batch.seq_id[k][0] = s
            batch.logits[k] = 1 if pos >= first else 0

    def close(self):
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None
