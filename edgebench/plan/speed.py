"""Rooflines: generation is bound by memory bandwidth, prompt processing by compute.

    tg t/s = eta_tg * bandwidth / bytes read per generated token
    pp t/s = eta_pp * peak FLOPS / FLOPs per prompt token

eta (efficiency) folds in what a roofline leaves out: kernels below peak, threads, caches, clocks.
Defaults below are used until stored results on a device calibrate it (calibrate.py).
"""

from __future__ import annotations

from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.memory import Runtime, kv_layer_bytes, recurrent_state_bytes

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


def weights_read_per_token(info: ModelInfo) -> float:
    """Every dense weight is read once per generated token, and of the routed experts only the
    n_expert_used of n_expert a token is sent to (shared experts are dense: always read). An untied
    embedding table is only looked up: one row is read."""
    total = info.weight_bytes - info.expert_bytes + info.active_expert_bytes
    if not info.tied_embeddings:
        embd = next((t for t in info.tensors if t.name == "token_embd.weight"), None)
        if embd is not None:
            total -= embd.n_bytes - embd.n_bytes // max(info.n_vocab, 1)
    return total


def attended(layer, depth: int) -> int:
    """Positions a layer attends at `depth`: a sliding window or chunk stops growing at its size."""
    return min(depth, layer.window) if layer.window else depth


def bytes_per_token(info: ModelInfo, runtime: Runtime, depth: int) -> float:
    """Weights + the KV each layer attends (and the attention work on it) + the recurrent state
    (read and written). A layer reusing another's cache still reads it."""
    kv = attention = 0.0
    for layer in info.layers:
        if not layer.attention:
            continue
        seen = attended(layer, depth)
        kv += seen * kv_layer_bytes(_own_cache(layer), runtime.kv_type)
        attention += seen * layer.n_head * (
            ATTN_POSITION_BYTES + ATTN_ELEMENT_BYTES * _head_widths(layer))
    return weights_read_per_token(info) + kv + attention + 2 * recurrent_state_bytes(info)


def _own_cache(layer):
    from dataclasses import replace
    return replace(layer, kv_shared=False) if layer.kv_shared else layer


def _head_widths(layer) -> float:
    """K + V elements of one head (MLA: the compressed K row serves both)."""
    kv_heads = max(layer.n_head_kv, 1)
    return (layer.n_embd_k_gqa + layer.n_embd_v_gqa) / kv_heads


def flops_per_token(info: ModelInfo, depth: int) -> float:
    """2 FLOPs per weight of every matmul a token goes through (active experts only), plus
    attention's QK and AV over the positions each layer attends."""
    params = info.active_params
    if not info.tied_embeddings:
        params -= info.n_vocab * info.n_embd  # the input embedding is a lookup, not a matmul
    attention = sum(2 * layer.n_head * _head_widths(layer) * attended(layer, depth)
                    for layer in info.layers if layer.attention)
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
