"""Rooflines: generation is bound by memory bandwidth, prompt processing by compute.

    tg t/s = eta_tg * bandwidth / cost per generated token (bytes read, plus fixed work in bytes)
    pp t/s = eta_pp * peak FLOPS / FLOPs per prompt token

eta (efficiency) folds in what the roofline leaves out: kernels below peak, caches, clocks.
Defaults below are used until stored results on a device calibrate it (calibrate.py).
"""

from __future__ import annotations

from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.memory import (
    STATE_BYTES,
    Runtime,
    kv_layer_bytes,
    output_copy_bytes,
    recurrent_state_bytes,
    repacks,
)

# Published llama.cpp generation efficiency on Apple M-series spans 0.45-0.84 of peak bandwidth,
# lower on wider buses; small SoCs sit in the middle.
DEFAULT_ETA_TG = 0.6
# CPU prompt processing reaches about a third of the fp32 FMA peak in llama.cpp's quantized matmuls.
DEFAULT_ETA_PP = 0.3
# What a generated token costs beyond reading its bytes, in bytes read at the calibrated bandwidth
# (so each scales with the device). Fitted by tests/perf/speed_constants.py on tg64 at depth 0, 2048
# and 8192 of six architectures at two depths each (llama, gemma3, qwen3moe, deepseek2, lfm2,
# qwen35; 36 cells on a 2-core x86 VM, each the median of five interleaved passes because the VM's
# speed drifts: tests/perf/data/speed-cells-xeon2.jsonl):
# - a weight the CPU backend repacked into its interleaved layout (memory.repack_rules) is multiplied
#   by a faster kernel: it costs this share of its bytes;
REPACKED_WEIGHT_COST = 0.68
# - every layer runs a dozen or more graph nodes, each a fork and join of the threads: a fixed cost
#   that a small model's narrow layers feel (gemma-3-270m's 18 layers);
LAYER_BYTES = 5.7e6
# - a recurrent layer's matrix state (DeltaNet, Mamba, RWKV) is read, updated and written in F32
#   scalar work, about three passes over each element; a convolution's state is only copied;
STATE_ELEMENT_BYTES = 76.0
# - each cell of a KV cache costs once per token, whatever the number of layers (measured: adding a
#   qwen3moe or qwen35 attention layer barely moves the depth cost; building the KQ mask over the
#   cache's cells is such work);
CACHE_CELL_BYTES = 4000.0
# - llama.cpp's CPU flash attention does per-position work for every query head (a dot, the online
#   softmax, an accumulate), nearly independent of the head's width (64 to 576 measured).
HEAD_POSITION_BYTES = 810.0


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


def repacked_read_per_token(info: ModelInfo, cpu_arch: str, features=None) -> float:
    """The share of `weights_read_per_token` in tensors llama.cpp repacks on `cpu_arch`."""
    repacked = repacks(cpu_arch, features)
    by_index = {layer.index: layer for layer in info.layers}
    total = 0.0
    for tensor in info.tensors:
        if not repacked(tensor):
            continue
        share = 1.0
        if "_exps" in tensor.name:
            layer = by_index.get(int(tensor.name.split(".")[1]))
            share = layer.active_fraction if layer else 1.0
        total += tensor.n_bytes * share
    # the output matmul of tied embeddings reads the repacked copy (memory.output_copy_bytes)
    return total + output_copy_bytes(info, cpu_arch, features)


def attended(layer, depth: int) -> int:
    """Positions a layer attends at `depth`: a sliding window or chunk stops growing at its size."""
    return min(depth, layer.window) if layer.window else depth


def bytes_read_per_token(info: ModelInfo, runtime: Runtime, depth: int) -> float:
    """What a generated token reads from memory: its weights, the KV each layer attends (a layer
    reusing another's cache still reads it) and the recurrent state, read and written."""
    kv = sum(attended(layer, depth) * kv_layer_bytes(_own_cache(layer), runtime.kv_type)
             for layer in info.layers if layer.attention)
    return weights_read_per_token(info) + kv + 2 * recurrent_state_bytes(info)


def token_cost(info: ModelInfo, runtime: Runtime, depth: int) -> tuple[float, float]:
    """A generated token's cost on the CPU in bytes at the calibrated rates, in two parts: (reads, fixed
    work). Reads: what it reads, with repacked weights at their share. Fixed work: the costs above (per
    layer, per recurrent state element, per cache cell, per query head and attended position), which
    a small model's run measures where a large one's reads hide them."""
    reads = bytes_read_per_token(info, runtime, depth)
    reads -= (1 - REPACKED_WEIGHT_COST) * repacked_read_per_token(info, runtime.cpu_arch, runtime.cpu_features)
    fixed = LAYER_BYTES * len(info.layers)
    # the matrix state is in the bytes read above (2 x 4 bytes an element): add the rest of its work
    fixed += sum(layer.s_size for layer in info.layers) * (STATE_ELEMENT_BYTES - 2 * STATE_BYTES)
    attention = [layer for layer in info.layers if layer.attention]
    fixed += CACHE_CELL_BYTES * cache_cells(attention, depth)
    fixed += HEAD_POSITION_BYTES * sum(attended(layer, depth) * layer.n_head for layer in attention)
    return reads, fixed


def bytes_per_token(info: ModelInfo, runtime: Runtime, depth: int) -> float:
    """A generated token's whole cost in bytes, where reads and fixed work go at one rate (as the
    constants were fitted)."""
    return sum(token_cost(info, runtime, depth))


def cache_cells(attention, depth: int) -> int:
    """Cells of the caches a token's mask covers: the full-attention cache and the sliding one."""
    full = max((attended(layer, depth) for layer in attention if not layer.window), default=0)
    sliding = max((attended(layer, depth) for layer in attention if layer.window), default=0)
    return full + sliding


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
    """Generation t/s at `depth` tokens of context, given eta x bandwidth in bytes/s for the reads and the
    fixed work alike (its constants were fitted so)."""
    if not effective_bandwidth:
        return None
    return effective_bandwidth / bytes_per_token(info, runtime, depth)


def pp_ts(info: ModelInfo, effective_flops: float | None, n_prompt: int = 512, depth: int = 0) -> float | None:
    """Prompt t/s for `n_prompt` tokens after `depth`, given eta x peak FLOPS."""
    if not effective_flops:
        return None
    return effective_flops / flops_per_token(info, depth + n_prompt // 2)
