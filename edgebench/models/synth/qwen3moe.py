"""Qwen3 MoE (``qwen3moe``): Qwen3 attention (GQA with q/k norms) and a routed-expert FFN in every layer.

As src/models/qwen3moe.cpp loads it: no dense FFN tensors (`feed_forward_length` is still written,
as the converter does, but only `expert_feed_forward_length` sizes the experts) and no shared expert.
"""

from __future__ import annotations

from edgebench.models.synth import experts as moe
from edgebench.models.synth.tensor import TensorSpec, attention_projections, norm

ARCH = "qwen3moe"


def layer_kinds(shape) -> list[str]:
    return ["attention"] * shape.n_layer


def problems(shape) -> list[str]:
    return moe.problems(shape.experts, ARCH)


def cut_problem(shape, n: int) -> str | None:
    return None


def block_tensors(shape, i: int) -> list[TensorSpec]:
    p, E = f"blk.{i}.", shape.n_embd
    return [
        norm(p + "attn_norm.weight", E),
        *attention_projections(p, E, shape.n_head, shape.n_head_kv, shape.head_dim),
        norm(p + "attn_k_norm.weight", shape.head_dim),
        norm(p + "attn_q_norm.weight", shape.head_dim),
        norm(p + "ffn_norm.weight", E),
        *moe.routed_tensors(p, E, shape.experts),
    ]


def metadata(shape) -> dict[str, object]:
    return moe.metadata(ARCH, shape.experts)
