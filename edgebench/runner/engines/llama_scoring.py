"""Logits of every scored position of llama-perplexity's chunks, straight from llama.cpp's buffer.

Chunks are decoded as llama-perplexity decodes them: n_seq = n_batch / n_ctx chunks side by side in one
batch, each its own sequence (so one decode fills the threads as well as its does), the KV cache cleared
first, BOS in place of each chunk's first token, pieces of at most n_batch tokens, and logits kept only
for positions from n_ctx/2 on. Each row is a memoryview over llama.cpp's own float buffer (no copy),
valid until the next decode, so the caller scores each row before asking for the next.

Each row comes with its argmax and log-sum-exp, computed in C by llama.cpp's own samplers (RowSummary):
a pass over a 248K vocabulary in Python costs 10-25 ms a token, more than the decode itself.
"""

from __future__ import annotations

import ctypes
import math

from ..protocol import RunnerFailure


class RowSummary:
    """A row's argmax and log Σ exp, by llama.cpp in C: a sampler chain of greedy (which leaves the first
    maximum selected, as llama-perplexity picks its top), then dist (which leaves every probability
    normalised, in token order), with a callback after each that reads just those two entries:
    log Σ exp = logit(top) - log p(top)."""

    def __init__(self, L):
        self.L = L
        self.top = 0
        self.lse = 0.0
        # kept alive here: C holds pointers to the interfaces and their callbacks
        self._interfaces = [self._interface(self._read_top), self._interface(self._read_lse)]
        self.chain = L.llama_sampler_chain_init(L.llama_sampler_chain_default_params())
        for sampler in (L.llama_sampler_init_greedy(), L.llama_sampler_init(ctypes.pointer(self._interfaces[0]), None),
                        L.llama_sampler_init_dist(0), L.llama_sampler_init(ctypes.pointer(self._interfaces[1]), None)):
            L.llama_sampler_chain_add(self.chain, sampler)

    def _interface(self, apply):
        interface = self.L.llama_sampler_i()
        interface.apply = self.L.llama_sampler_i_apply(apply)
        return interface

    def _read_top(self, _sampler, cur_p):
        self.top = cur_p.contents.selected  # unsorted: the index is the token id

    def _read_lse(self, _sampler, cur_p):
        entry = cur_p.contents.data[self.top]
        self.lse = entry.logit - math.log(entry.p)

    def __call__(self, ctx, index: int):
        """(argmax token, log Σ exp) of the logits of batch entry `index`."""
        self.L.llama_sampler_sample(self.chain, ctx, index)
        return self.top, self.lse

    def close(self):
        if self.chain is not None:
            self.L.llama_sampler_free(self.chain)
            self.chain = None


# llama.cpp keeps a float logit per vocabulary entry for every token a batch can output; llama-perplexity
# sizes batches by n_batch alone (2 GB of logits for 2048 tokens of a 248K vocabulary), edgebench puts
# fewer chunks side by side where that would pass this. The scores are the same: chunks are independent.
OUTPUT_BUDGET_BYTES = 512 * 2**20


def sequences_per_batch(n_batch: int, n_ctx: int, n_vocab: int) -> int:
    """llama-perplexity's n_seq, how many chunks one batch holds, within OUTPUT_BUDGET_BYTES of logits."""
    return max(1, min(n_batch // n_ctx, OUTPUT_BUDGET_BYTES // (4 * n_vocab * n_ctx)))


class ChunkDecoder:
    def __init__(self, L, ctx, n_vocab: int, n_batch: int, n_seq: int, bos):
        self.L, self.ctx, self.n_vocab, self.n_batch, self.bos = L, ctx, n_vocab, n_batch, bos
        self.n_seq = n_seq
        self.batch = L.llama_batch_init(n_batch, 0, 1)
        self.row_type = ctypes.c_float * n_vocab
        self.summary = RowSummary(L)

    def rows(self, chunks):
        """(chunk index, position, row, (argmax, log Σ exp)) for each position p >= n_ctx // 2 but the last
        of each of `chunks` (at most n_seq of one length); the row predicts chunk[p + 1]."""
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
                    row = memoryview(self.row_type.from_address(address)).cast("B").cast("f")
                    yield s, pos, row, self.summary(ctx, k)

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
        self.summary.close()
        if self.batch is not None:
            self.L.llama_batch_free(self.batch)
            self.batch = None
