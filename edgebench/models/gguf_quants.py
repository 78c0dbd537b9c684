"""Which ggml type llama.cpp's quantizer gives each tensor, without running it.

Mirrors `llama_tensor_get_type` in llama.cpp's src/llama-quant.cpp (the copy vendored in
llama-cpp-python 0.3.36) for the quants `edgebench synth` makes, so a `--like` plan sizes the file
that `synth` would write (checked against real files in tests/test_plan.py).
"""

from __future__ import annotations

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from edgebench.models.synth.shapes import ModelShape, TensorSpec

T = GGMLQuantizationType

#: llama_ftype_get_default_type: the type most tensors get
DEFAULT_TYPE = {"F16": T.F16, "Q8_0": T.Q8_0, "Q6_K": T.Q6_K, "Q5_K_M": T.Q5_K,
                "Q4_K_M": T.Q4_K, "Q3_K_S": T.Q3_K}

# tensor_type_fallback: a K-quant needs rows that are whole 256-blocks; else a 32-block type
_FALLBACK = {T.Q3_K: T.Q5_0, T.Q4_K: T.Q5_0, T.Q5_K: T.Q5_1, T.Q6_K: T.Q8_0}


def type_bytes(ggml_type: GGMLQuantizationType, n_elements: int) -> int:
    block, size = GGML_QUANT_SIZES[ggml_type]
    return n_elements // block * size


def bits_per_element(ggml_type: GGMLQuantizationType) -> float:
    block, size = GGML_QUANT_SIZES[ggml_type]
    return size * 8 / block


def _quantizable(t: TensorSpec) -> bool:
    # tensor_allows_quantization: 2-D and 3-D (expert) weights only; never norms, the expert router or
    # the convolution kernels
    return (len(t.shape) >= 2 and t.name.endswith("weight") and "_norm.weight" not in t.name
            and "ssm_conv1d" not in t.name and "shortconv.conv.weight" not in t.name
            and "ffn_gate_inp.weight" not in t.name)


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _attn_v_like(name: str) -> bool:
    return "attn_v.weight" in name or "attn_qkv.weight" in name


def tensor_types(shape: ModelShape, quant: str) -> list[tuple[TensorSpec, GGMLQuantizationType]]:
    """Each tensor of `shape` with the type a `quant` file holds it in."""
    default = DEFAULT_TYPE[quant]
    tensors = shape.tensors()
    tied = not any(t.name == "output.weight" for t in tensors)
    n_attn_v = sum(1 for t in tensors if _attn_v_like(t.name))
    i_attn_v = 0
    # llama.cpp gives a model of exactly 8 experts (Mixtral's shape) more bits in attention
    eight_experts = shape.n_expert == 8
    out = []
    # llama.cpp walks tensors by layer, then by name; the attn_v counter follows that order
    for t in sorted(tensors, key=_loader_order):
        source = T.F16 if t.dtype == "F16" else T.F32
        if not _quantizable(t) or default == T.F16:
            out.append((t, source))
            continue
        kind = default
        ncols = t.shape[-1]
        if t.name == "output.weight" or (tied and t.name == "token_embd.weight"):
            if ncols % GGML_QUANT_SIZES[default][0]:
                kind = T.Q8_0
            elif default != T.Q8_0:
                kind = T.Q6_K
        elif _attn_v_like(t.name):
            if quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i_attn_v, n_attn_v):
                kind = T.Q6_K
            if eight_experts:
                kind = T.Q8_0
            i_attn_v += 1
        elif "attn_k.weight" in t.name and eight_experts:
            kind = T.Q8_0
        elif "attn_output.weight" in t.name and eight_experts and quant in ("Q4_K_M", "Q3_K_S"):
            kind = T.Q5_K
        elif "ffn_down" in t.name:
            # by layer number: also for the expert and shared-expert tensors of a MoE layer
            layer = int(t.name.split(".")[1])
            if quant in ("Q4_K_M", "Q5_K_M") and _use_more_bits(layer, shape.n_layer):
                kind = T.Q6_K
        if ncols % GGML_QUANT_SIZES[kind][0]:
            kind = _FALLBACK.get(kind, kind)
            if ncols % GGML_QUANT_SIZES[kind][0]:
                kind = T.F16
        out.append((t, kind))
    return out


def _loader_order(t: TensorSpec):
    parts = t.name.split(".")
    layer = int(parts[1]) if parts[0] == "blk" else -1
    return (layer, t.name)
