"""LFM2 (``lfm2``): gated short-convolution layers with a few GQA attention layers in between.

As src/models/lfm2.cpp loads it: a layer is a short convolution exactly when its entry of the
per-layer `attention.head_count_kv` array is 0 (the converter writes 0 for every "conv" layer);
`shortconv.l_cache` is the convolution's length. Every layer has a dense SwiGLU FFN. Attention
projections are n_embd wide (n_head * head_dim == n_embd) with q/k norms; the final norm is named
`token_embd_norm` and the LM head is the embedding (tied).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.synth.tensor import TensorSpec, attention_projections, matrix, norm

ARCH = "lfm2"
OUTPUT_NORM = "token_embd_norm.weight"


@dataclass(frozen=True)
class ShortConv:
    l_cache: int  # `conv_L_cache`: the convolution's kernel length
    attention_layers: tuple[int, ...]  # `full_attn_idxs`: every other layer is a short convolution


def layer_kinds(shape) -> list[str]:
    attention = set(shape.short_conv.attention_layers)
    return ["attention" if i in attention else "shortconv" for i in range(shape.n_layer)]


def problems(shape) -> list[str]:
    conv = shape.short_conv
    if conv is None or conv.l_cache < 1:
        return ["lfm2 needs a short convolution of positive length"]
    out = []
    if shape.n_head * shape.head_dim != shape.n_embd:
        out.append(f"lfm2 attention is n_embd wide: n_head * head_dim must be {shape.n_embd}")
    if any(i < 0 for i in conv.attention_layers):
        out.append(f"lfm2 attention layers {conv.attention_layers} must be layer numbers (from 0)")
    return out


def cut_problem(shape, n: int) -> str | None:
    first = min(shape.short_conv.attention_layers)
    if n <= first:
        return (f"{shape.name} with {n} layer{'s' if n > 1 else ''} would have only short-convolution layers; "
                f"its first attention layer is layer {first}, so keep at least {first + 1} layers")
    return None


def block_tensors(shape, i: int) -> list[TensorSpec]:
    p, E, F = f"blk.{i}.", shape.n_embd, shape.n_ff
    out = [
        norm(p + "ffn_norm.weight", E),
        matrix(p + "ffn_gate.weight", F, E),
        matrix(p + "ffn_down.weight", E, F),
        matrix(p + "ffn_up.weight", F, E),
        norm(p + "attn_norm.weight", E),
    ]
    if i in shape.short_conv.attention_layers:
        return out + [
            norm(p + "attn_q_norm.weight", shape.head_dim),
            norm(p + "attn_k_norm.weight", shape.head_dim),
            *attention_projections(p, E, shape.n_head, shape.n_head_kv, shape.head_dim),
        ]
    return out + [
        TensorSpec(p + "shortconv.conv.weight", (E, shape.short_conv.l_cache), "F32", "conv"),
        matrix(p + "shortconv.in_proj.weight", 3 * E, E),
        matrix(p + "shortconv.out_proj.weight", E, E),
    ]


def metadata(shape) -> dict[str, object]:
    attention = set(shape.short_conv.attention_layers)
    return {
        f"{ARCH}.attention.head_count_kv": [shape.n_head_kv if i in attention else 0 for i in range(shape.n_layer)],
        f"{ARCH}.shortconv.l_cache": shape.short_conv.l_cache,
    }
