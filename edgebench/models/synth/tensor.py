"""One tensor of a synthetic model: its GGUF name, shape, stored type and how the writer fills it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a synthetic model.

    ``shape`` is in numpy order (slowest dimension first), i.e. the reverse of ggml's ``ne``; an
    expert tensor is 3-D, experts first.
    ``init`` says how the writer fills it: ``normal`` (small random values), ``ones``,
    ``conv`` (short-conv kernel), ``ssm_a`` (negative decay rates), ``dt_bias``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: Literal["F16", "F32"]
    init: Literal["normal", "ones", "conv", "ssm_a", "dt_bias"] = "normal"

    @property
    def ne(self) -> tuple[int, ...]:
        """ggml order (fastest dimension first), as llama.cpp and its error messages show it."""
        return tuple(reversed(self.shape))

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.n_elements * (2 if self.dtype == "F16" else 4)


def norm(name: str, width: int) -> TensorSpec:
    """An RMS-norm weight (F32, ones), as every converter stores it."""
    return TensorSpec(name, (width,), "F32", "ones")


def matrix(name: str, n_out: int, n_in: int) -> TensorSpec:
    """A projection from `n_in` to `n_out` features: ggml ne {n_in, n_out}."""
    return TensorSpec(name, (n_out, n_in), "F16")


def attention_projections(prefix: str, n_embd: int, n_head: int, n_head_kv: int, head_dim: int) -> list[TensorSpec]:
    """Q, K, V and the output projection of one grouped-query attention layer, in llama.cpp's names."""
    q, kv = n_head * head_dim, n_head_kv * head_dim
    return [matrix(prefix + "attn_q.weight", q, n_embd), matrix(prefix + "attn_k.weight", kv, n_embd),
            matrix(prefix + "attn_v.weight", kv, n_embd), matrix(prefix + "attn_output.weight", n_embd, q)]
