"""Gemma 3 (``gemma3``): sliding-window attention with one global layer in six.

llama.cpp's gemma3 loader (src/models/gemma3.cpp) turns `<arch>.attention.sliding_window` on and,
without a `sliding_window_pattern` key (the converter writes none), applies its default: layer
``il`` is local when ``il % 6 < 5``, so layers 5, 11, 17, ... are global. Local layers rotate with
`rope.freq_base_swa`, global ones with `rope.freq_base`. Each block has q/k norms and norms after
attention and after the FFN; the embedding is scaled by sqrt(n_embd) in the graph (no key) and the
LM head is the embedding (tied).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.synth.tensor import TensorSpec, attention_projections, matrix, norm

ARCH = "gemma3"

#: llama.cpp's `load_swa_pattern(ml, 6)` for gemma3: five local layers, then one global
PATTERN = 6


@dataclass(frozen=True)
class SlidingWindow:
    window: int  # `sliding_window`: tokens a local layer attends to
    rope_base_local: float  # `rope_local_base_freq`, written as rope.freq_base_swa


def is_local(i: int) -> bool:
    return i % PATTERN < PATTERN - 1


def layer_kinds(shape) -> list[str]:
    return ["swa" if is_local(i) else "attention" for i in range(shape.n_layer)]


def problems(shape) -> list[str]:
    if shape.sliding_window is None or shape.sliding_window.window < 1:
        return ["gemma3 needs a sliding window of at least one token"]
    return []


def cut_problem(shape, n: int) -> str | None:
    # fewer than six layers keeps only local layers: llama.cpp loads and runs that (checked), so no refusal
    return None


def block_tensors(shape, i: int) -> list[TensorSpec]:
    p, E, F = f"blk.{i}.", shape.n_embd, shape.n_ff
    return [
        norm(p + "attn_norm.weight", E),
        *attention_projections(p, E, shape.n_head, shape.n_head_kv, shape.head_dim),
        norm(p + "post_attention_norm.weight", E),
        norm(p + "attn_k_norm.weight", shape.head_dim),
        norm(p + "attn_q_norm.weight", shape.head_dim),
        norm(p + "ffn_norm.weight", E),
        matrix(p + "ffn_gate.weight", F, E),
        matrix(p + "ffn_up.weight", F, E),
        matrix(p + "ffn_down.weight", E, F),
        norm(p + "post_ffw_norm.weight", E),
    ]


def metadata(shape) -> dict[str, object]:
    return {
        f"{ARCH}.attention.sliding_window": shape.sliding_window.window,
        f"{ARCH}.rope.freq_base_swa": float(shape.sliding_window.rope_base_local),
    }
