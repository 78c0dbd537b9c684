"""A mixture-of-experts FFN: the router and the 3-D expert tensors, as llama.cpp loads them.

Shared by the MoE families (qwen3moe, deepseek2): `ffn_gate_inp` (the router, kept F32 as the
converter stores it and the quantizer never touches it) and `ffn_{gate,up,down}_exps`, each one
3-D tensor holding every expert; deepseek2 adds always-on shared experts (`*_shexp`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.synth.tensor import TensorSpec, matrix


@dataclass(frozen=True)
class Experts:
    n_expert: int  # routed experts per MoE layer
    n_expert_used: int  # experts each token is routed to
    n_ff_exp: int  # one expert's FFN width (`moe_intermediate_size`)
    n_shared: int = 0  # always-on shared experts (deepseek2), each n_ff_exp wide
    n_dense_lead: int = 0  # leading layers with a dense FFN instead (deepseek2 `first_k_dense_replace`)
    weights_scale: float = 0.0  # `routed_scaling_factor`; 0: not written


def problems(experts: Experts | None, arch: str) -> list[str]:
    if experts is None:
        return [f"{arch} needs experts"]
    out = []
    if experts.n_expert < 2 or experts.n_ff_exp < 1:
        out.append(f"{arch} needs at least 2 experts of positive width")
    if not 1 <= experts.n_expert_used <= experts.n_expert:
        out.append(f"experts used ({experts.n_expert_used}) must be between 1 and the experts ({experts.n_expert})")
    return out


def routed_tensors(p: str, n_embd: int, experts: Experts) -> list[TensorSpec]:
    X, Fe = experts.n_expert, experts.n_ff_exp
    return [
        TensorSpec(p + "ffn_gate_inp.weight", (X, n_embd), "F32"),
        TensorSpec(p + "ffn_gate_exps.weight", (X, Fe, n_embd), "F16"),
        TensorSpec(p + "ffn_up_exps.weight", (X, Fe, n_embd), "F16"),
        TensorSpec(p + "ffn_down_exps.weight", (X, n_embd, Fe), "F16"),
    ]


def shared_tensors(p: str, n_embd: int, experts: Experts) -> list[TensorSpec]:
    width = experts.n_ff_exp * experts.n_shared
    return [
        matrix(p + "ffn_gate_shexp.weight", width, n_embd),
        matrix(p + "ffn_up_shexp.weight", width, n_embd),
        matrix(p + "ffn_down_shexp.weight", n_embd, width),
    ]


def metadata(arch: str, experts: Experts) -> dict[str, object]:
    return {
        f"{arch}.expert_count": experts.n_expert,
        f"{arch}.expert_used_count": experts.n_expert_used,
        f"{arch}.expert_feed_forward_length": experts.n_ff_exp,
    }
