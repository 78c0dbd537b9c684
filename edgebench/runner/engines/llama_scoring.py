"""Logits of every scored position of a llama-perplexity chunk, straight from llama.cpp's buffer.

A chunk is decoded as llama-perplexity decodes it: the KV cache cleared, BOS in place of its first
token, pieces of n_batch tokens, logits kept only for positions from n_ctx/2 on. Each row is a
memoryview over llama.cpp's own float buffer (no copy), valid until the next decode, so the caller
scores each row before asking for the next.
"""

from __future__ import annotations

import ctypes

from ..protocol import RunnerFailure


class ChunkDecoder:
    def __init__(self, L, ctx, n_vocab: int, n_batch: int, bos):
        self.L, self.ctx, self.n_vocab, self.n_batch, self.bos = L, ctx, n_vocab, n_batch, bos
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.row_type = ctypes.c_float * n_vocab

    def rows(self, chunk):
        """(position, row) for each position p >= len(chunk)//2 except the last; row predicts chunk[p+1]."""
        L, ctx, batch = self.L, self.ctx, self.batch
        n_ctx = len(chunk)
        first = n_ctx // 2
        L.llama_memory_clear(L.llama_get_memory(ctx), True)
        for start in range(0, n_ctx, self.n_batch):
            size = min(self.n_batch, n_ctx - start)
            batch.n_tokens = size
            for k in range(size):
                pos = start + k
                batch.token[k] = self.bos if (pos == 0 and self.bos is not None) else chunk[pos]
                batch.pos[k] = pos
                batch.n_seq_id[k] = 1
                batch.seq_id[k][0] = 0
                batch.logits[k] = 1 if pos >= first else 0
            rc = L.llama_decode(ctx, batch)
            if rc != 0:
                raise RunnerFailure("engine", "llama_decode returned %d while scoring (out of memory?)" % rc)
            for k in range(max(0, first - start), size):
                pos = start + k
                if pos >= n_ctx - 1:
                    break
                address = ctypes.cast(L.llama_get_logits_ith(ctx, k), ctypes.c_void_p).value
                yield pos, memoryview(self.row_type.from_address(address)).cast("B").cast("f")

    def close(self):
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None
