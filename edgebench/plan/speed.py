"""Rooflines: generation is bound by memory bandwidth, prompt processing by compute.

    tg t/s = eta_tg * bandwidth / bytes read per generated token
    pp t/s = eta_pp * peak FLOPS / FLOPs per prompt token

eta (efficiency) folds in what a roofline leaves out: kernels below peak, threads, caches, clocks.
Defaults below are used until stored results on a device calibrate it (calibrate.py).
"""

from __future__ import annotations

from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.memory import Runtime, kv_bytes_per_token, recurrent_state_bytes

# Published llama.cpp generation efficiency on Apple M-series spans 0.45-0.84 of peak bandwidth,
# lower on wider buses; small SoCs sit in the middle.
DEFAULT_ETA_TG = 0.6
# CPU prompt processing reaches about a third of the fp32 FMA peak in llama.cpp's quantized matmuls.
DEFAULT_ETA_PP = 0.3
# Generating at depth costs more than reading the KV cache: llama.cpp's CPU flash-attention kernel
# does per-position work (dot, online softmax, accumulate) for every query head. Expressed in
# bytes-equivalent at the calibrated bandwidth, per (query head x position x attention layer) and
# per K/V element of it; fitted from tg64 vs tg64@d4096 of a qwen35 and a llama model
# (tests/perf/plan_accuracy.py checks it at another depth).
ATTN_POSITION_BYTES = 820.0
ATTN_ELEMENT_BYTES = 2.0


def weights_read_per_token(info: ModelInfo) -> int:
    """Every weight is read once per generated token, except an untied embedding table, of which
    only the token's row is read."""
    total = info.weight_bytes
    if not info.tied_embeddings:
        embd = next((t for t in info.tensors if t.name == "token_embd.weight"), None)
        if embd is not None:
            total -= embd.n_bytes - embd.n_bytes // max(info.n_vocab, 1)
    return total


def bytes_per_token(info: ModelInfo, runtime: Runtime, depth: int) -> float:
    """Weights + the KV cache read so far (and the attention work on it) + the recurrent state
    (read and written)."""
    attention = depth * info.n_attention_layers * info.n_head * (
        ATTN_POSITION_BYTES + ATTN_ELEMENT_BYTES * (info.key_length + info.value_length))
    return (weights_read_per_token(info) + kv_bytes_per_token(info, runtime.kv_type) * depth
            + attention + 2 * recurrent_state_bytes(info))


def flops_per_token(info: ModelInfo, depth: int) -> float:
    """2 FLOPs per weight of every matmul, plus attention's QK and AV over the context so far."""
    params = info.n_params
    if not info.tied_embeddings:
        params -= info.n_vocab * info.n_embd  # the input embedding is a lookup, not a matmul
    attention = 4 * info.n_head * info.key_length * info.n_attention_layers * depth
    return 2 * params + attention


def tg_ts(info: ModelInfo, runtime: Runtime, effective_bandwidth: float | None, depth: int) -> float | None:
    """Generation t/s at `depth` tokens of context, given eta x bandwidth in bytes/s."""
    if not effective_bandwidth:
        return None
    return effective_bandwidth / bytes_per_token(info, runtime, depth)


def pp_ts(info: ModelInfo, effective_flops: float | None, n_prompt: int = 512, depth: int = 0) -> float | None:
    """Prompt t/s for `n_prompt` tokens after `depth`, given eta x peak FLOPS."""
    if not effective_flops:
        return None
    return effective_flops / flops_per_token(info, depth + n_prompt // 2)
