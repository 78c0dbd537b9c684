"""DeepSeek-V2 (``deepseek2``): multi-head latent attention (MLA) and a MoE FFN with shared experts.

As src/models/deepseek2.cpp loads a current GGUF: keys and values are compressed into one
`kv_lora_rank`-wide latent plus a `qk_rope` part shared by all heads, so the file describes MQA
(`head_count_kv` 1, key_length kv_lora_rank + qk_rope, value_length kv_lora_rank) and the per-head
sizes go in `key_length_mla` / `value_length_mla`; `attn_k_b` / `attn_v_b` decompress per head.
Lite models (DeepSeek-V2-Lite) have no query compression: `attn_q` instead of `attn_q_a`/`attn_q_b`.
llama.cpp reads `attention.q_lora_rank` unless the depth is one it knows as a lite model, so it is
always written (0: none), which keeps a model cut by `--layers` loadable. The first
`leading_dense_block_count` layers have a dense FFN; the rest route to experts and add shared ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.synth import experts as moe
from edgebench.models.synth.tensor import TensorSpec, matrix, norm

ARCH = "deepseek2"


@dataclass(frozen=True)
class LatentAttention:
    kv_lora_rank: int  # width of the compressed KV latent
    qk_rope_dim: int  # rotated part of each query/key head (shared by all heads for keys)
    qk_nope_dim: int  # unrotated part of each query/key head
    v_head_dim: int
    q_lora_rank: int = 0  # 0: queries are not compressed (lite models)
    # YaRN context extension as published (`rope_scaling`); 0: none
    yarn_factor: float = 0.0
    yarn_original_context: int = 0
    yarn_mscale_all_dim: float = 0.0


def layer_kinds(shape) -> list[str]:
    return ["attention"] * shape.n_layer


def problems(shape) -> list[str]:
    out = moe.problems(shape.experts, ARCH)
    mla = shape.latent_attention
    if mla is None or min(mla.kv_lora_rank, mla.qk_rope_dim, mla.qk_nope_dim, mla.v_head_dim) < 1:
        out.append("deepseek2 needs positive kv_lora_rank, qk_rope_dim, qk_nope_dim and v_head_dim")
    elif shape.head_dim != mla.qk_nope_dim + mla.qk_rope_dim:
        out.append(f"deepseek2 head_dim must be qk_nope_dim + qk_rope_dim = {mla.qk_nope_dim + mla.qk_rope_dim}")
    return out


def cut_problem(shape, n: int) -> str | None:
    return None


def block_tensors(shape, i: int) -> list[TensorSpec]:
    p, E, H = f"blk.{i}.", shape.n_embd, shape.n_head
    mla, experts = shape.latent_attention, shape.experts
    out = [norm(p + "attn_norm.weight", E)]
    if mla.q_lora_rank:
        out += [norm(p + "attn_q_a_norm.weight", mla.q_lora_rank)]
    out += [norm(p + "attn_kv_a_norm.weight", mla.kv_lora_rank)]
    if mla.q_lora_rank:
        out += [matrix(p + "attn_q_a.weight", mla.q_lora_rank, E),
                matrix(p + "attn_q_b.weight", H * shape.head_dim, mla.q_lora_rank)]
    else:
        out += [matrix(p + "attn_q.weight", H * shape.head_dim, E)]
    out += [
        matrix(p + "attn_kv_a_mqa.weight", mla.kv_lora_rank + mla.qk_rope_dim, E),
        TensorSpec(p + "attn_k_b.weight", (H, mla.kv_lora_rank, mla.qk_nope_dim), "F16"),
        TensorSpec(p + "attn_v_b.weight", (H, mla.v_head_dim, mla.kv_lora_rank), "F16"),
        matrix(p + "attn_output.weight", E, H * mla.v_head_dim),
        norm(p + "ffn_norm.weight", E),
    ]
    if i < experts.n_dense_lead:
        F = shape.n_ff
        return out + [matrix(p + "ffn_gate.weight", F, E), matrix(p + "ffn_down.weight", E, F),
                      matrix(p + "ffn_up.weight", F, E)]
    return out + moe.routed_tensors(p, E, experts) + moe.shared_tensors(p, E, experts)


def metadata(shape) -> dict[str, object]:
    mla, experts, a = shape.latent_attention, shape.experts, ARCH
    meta: dict[str, object] = {
        f"{a}.attention.head_count_kv": 1,
        f"{a}.attention.key_length": mla.kv_lora_rank + mla.qk_rope_dim,
        f"{a}.attention.value_length": mla.kv_lora_rank,
        f"{a}.attention.key_length_mla": mla.qk_nope_dim + mla.qk_rope_dim,
        f"{a}.attention.value_length_mla": mla.v_head_dim,
        f"{a}.attention.kv_lora_rank": mla.kv_lora_rank,
        f"{a}.attention.q_lora_rank": mla.q_lora_rank,
        f"{a}.rope.dimension_count": mla.qk_rope_dim,
        f"{a}.leading_dense_block_count": experts.n_dense_lead,
        **moe.metadata(a, experts),
        f"{a}.expert_shared_count": experts.n_shared,
    }
    if experts.weights_scale:
        meta[f"{a}.expert_weights_scale"] = float(experts.weights_scale)
    if mla.yarn_factor:
        meta.update({
            f"{a}.rope.scaling.type": "yarn",
            f"{a}.rope.scaling.factor": float(mla.yarn_factor),
            f"{a}.rope.scaling.original_context_length": mla.yarn_original_context,
            # the converter writes 0.1 * mscale_all_dim and llama.cpp divides it back out
            f"{a}.rope.scaling.yarn_log_multiplier": 0.1 * mla.yarn_mscale_all_dim,
        })
    return meta
