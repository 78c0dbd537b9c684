"""Model shapes: every dimension llama.cpp needs to lay out a model, and nothing about its weights.

A `ModelShape` fixes the GGUF metadata and the exact tensor list (names, shapes, dtypes) of a
synthetic model. Two architectures are supported, as llama.cpp (the one vendored in
llama-cpp-python 0.3.36) expects them:

* ``qwen35`` -- Qwen3.5 dense: hybrid Gated DeltaNet (linear attention) + gated full attention.
  Layer ``i`` is full attention when ``(i + 1) % full_attention_interval == 0``, else DeltaNet.
* ``llama`` -- the plain Llama decoder.

`ModelShape.tensors()` is the single source of truth for what the writer puts in a file, and
`n_params()` is computed from it, so the count always matches the file.

What `n_params()` counts: the text decoder exactly as written to GGUF -- token embedding, the
decoder layers, the final norm and the LM head when it is *not* tied (a tied head is the embedding
matrix, counted once). It does not count the vision tower or the multi-token-prediction (MTP) layer
that the published Qwen3.5 checkpoints also contain (llama.cpp does not run MTP layers in a normal
decode, so they do not affect token/s), hence it is lower than the published totals.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from edgebench.errors import SynthError

ARCHES = ("qwen35", "llama")

LayerKind = Literal["attention", "deltanet"]


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a synthetic model.

    ``shape`` is in numpy order (slowest dimension first), i.e. the reverse of ggml's ``ne``.
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


@dataclass(frozen=True)
class ModelShape:
    """Dimensions of one model. Frozen; derive variants with `with_layers` or `dataclasses.replace`."""

    name: str
    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    rope_theta: float
    context_length: int
    tied_embeddings: bool
    rms_norm_eps: float = 1e-6
    # qwen35 only ------------------------------------------------------------------------------
    full_attention_interval: int = 4
    partial_rotary_factor: float = 1.0  # fraction of head_dim that is rotated (0.25 for Qwen3.5)
    conv_kernel: int = 0  # linear_conv_kernel_dim
    state_size: int = 0  # linear_key_head_dim (== linear_value_head_dim)
    group_count: int = 0  # linear_num_key_heads
    time_step_rank: int = 0  # linear_num_value_heads
    # where the numbers come from (free text, for humans)
    source: str = ""

    def __post_init__(self) -> None:
        problems = []
        if self.arch not in ARCHES:
            problems.append(f"arch must be one of {ARCHES}, got {self.arch!r}")
        for field in ("n_vocab", "n_embd", "n_layer", "n_ff", "n_head", "n_head_kv", "head_dim",
                      "context_length"):
            if getattr(self, field) < 1:
                problems.append(f"{field} must be positive")
        if self.n_head_kv >= 1 and self.n_head % self.n_head_kv:
            problems.append(f"n_head {self.n_head} is not a multiple of n_head_kv {self.n_head_kv}")
        if self.n_vocab < N_BASE_TOKENS:
            problems.append(f"n_vocab must be at least {N_BASE_TOKENS} (the minimal tokenizer)")
        if self.arch == "qwen35":
            for field in ("full_attention_interval", "conv_kernel", "state_size", "group_count",
                          "time_step_rank"):
                if getattr(self, field) < 1:
                    problems.append(f"qwen35 needs a positive {field}")
            if self.group_count >= 1 and self.time_step_rank % self.group_count:
                problems.append("time_step_rank (value heads) must be a multiple of group_count (key heads)")
            if self.n_rot < 2 or self.n_rot % 2:
                problems.append(f"rotary dimension {self.n_rot} must be even and at least 2")
        if problems:
            raise SynthError(f"invalid model shape {self.name!r}: " + "; ".join(problems))

    # -- derived dimensions -------------------------------------------------------------------

    @property
    def n_rot(self) -> int:
        """Rotated dimensions per head (llama.cpp's ``rope.dimension_count``)."""
        if self.arch == "llama":
            return self.head_dim
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def rope_sections(self) -> tuple[int, int, int, int]:
        """M-RoPE sections (qwen35): n_rot/2 split over (t, h, w), e.g. 64 -> (11, 11, 10, 0)."""
        half = self.n_rot // 2
        base, rem = divmod(half, 3)
        s = [base + (1 if i < rem else 0) for i in range(3)]
        return (s[0], s[1], s[2], 0)

    @property
    def inner_size(self) -> int:
        """``ssm.inner_size`` = linear value dim; llama.cpp requires state_size * time_step_rank."""
        return self.state_size * self.time_step_rank

    @property
    def key_dim(self) -> int:
        return self.state_size * self.group_count

    @property
    def conv_dim(self) -> int:
        """Channels of the short convolution over the fused q, k, v projection."""
        return 2 * self.key_dim + self.inner_size

    def layer_kinds(self) -> list[LayerKind]:
        if self.arch == "llama":
            return ["attention"] * self.n_layer
        return ["attention" if (i + 1) % self.full_attention_interval == 0 else "deltanet"
                for i in range(self.n_layer)]

    @property
    def n_attention_layers(self) -> int:
        return sum(1 for k in self.layer_kinds() if k == "attention")

    @property
    def n_deltanet_layers(self) -> int:
        return self.n_layer - self.n_attention_layers

    @property
    def min_layers(self) -> int:
        """The fewest layers llama.cpp runs: a qwen35 model needs one full-attention layer (its
        graph aborts without one), and layer ``interval - 1`` is the first."""
        return self.full_attention_interval if self.arch == "qwen35" else 1

    def with_layers(self, n: int) -> ModelShape:
        """Same width, first ``n`` layers (so the attention/DeltaNet pattern is kept)."""
        if n < 1 or n > self.n_layer:
            raise SynthError(f"{self.name} has {self.n_layer} layers; cannot keep {n} (choose 1 to {self.n_layer})"
                             if self.min_layers == 1 else
                             f"{self.name} has {self.n_layer} layers; cannot keep {n} "
                             f"(choose {self.min_layers} to {self.n_layer})")
        if n < self.min_layers:
            raise SynthError(
                f"{self.name} with {n} layer{'s' if n > 1 else ''} would have no full-attention layer, which "
                f"llama.cpp cannot run: in {self.arch} every {self.full_attention_interval}th layer is attention, "
                f"so keep at least {self.min_layers} layers")
        if n == self.n_layer:
            return self
        return dataclasses.replace(self, n_layer=n)

    # -- tensors ------------------------------------------------------------------------------

    def tensors(self) -> list[TensorSpec]:
        """Every tensor the writer emits, in file order (numpy-order shapes)."""
        E, F, V = self.n_embd, self.n_ff, self.n_vocab
        D, H, Hkv = self.head_dim, self.n_head, self.n_head_kv
        out = [TensorSpec("token_embd.weight", (V, E), "F16")]
        for i, kind in enumerate(self.layer_kinds()):
            p = f"blk.{i}."
            out.append(TensorSpec(p + "attn_norm.weight", (E,), "F32", "ones"))
            if self.arch == "llama":
                out += [
                    TensorSpec(p + "attn_q.weight", (D * H, E), "F16"),
                    TensorSpec(p + "attn_k.weight", (D * Hkv, E), "F16"),
                    TensorSpec(p + "attn_v.weight", (D * Hkv, E), "F16"),
                    TensorSpec(p + "attn_output.weight", (E, D * H), "F16"),
                    TensorSpec(p + "ffn_norm.weight", (E,), "F32", "ones"),
                ]
            elif kind == "attention":
                out += [
                    TensorSpec(p + "attn_q.weight", (2 * D * H, E), "F16"),  # query + output gate
                    TensorSpec(p + "attn_k.weight", (D * Hkv, E), "F16"),
                    TensorSpec(p + "attn_v.weight", (D * Hkv, E), "F16"),
                    TensorSpec(p + "attn_output.weight", (E, D * H), "F16"),
                    TensorSpec(p + "attn_q_norm.weight", (D,), "F32", "ones"),
                    TensorSpec(p + "attn_k_norm.weight", (D,), "F32", "ones"),
                    TensorSpec(p + "post_attention_norm.weight", (E,), "F32", "ones"),
                ]
            else:
                r = self.time_step_rank
                out += [
                    TensorSpec(p + "attn_qkv.weight", (self.conv_dim, E), "F16"),
                    TensorSpec(p + "attn_gate.weight", (self.inner_size, E), "F16"),
                    TensorSpec(p + "ssm_conv1d.weight", (self.conv_dim, self.conv_kernel), "F32", "conv"),
                    TensorSpec(p + "ssm_dt.bias", (r,), "F32", "dt_bias"),
                    TensorSpec(p + "ssm_a", (r,), "F32", "ssm_a"),
                    TensorSpec(p + "ssm_beta.weight", (r, E), "F16"),
                    TensorSpec(p + "ssm_alpha.weight", (r, E), "F16"),
                    TensorSpec(p + "ssm_norm.weight", (self.state_size,), "F32", "ones"),
                    TensorSpec(p + "ssm_out.weight", (E, self.inner_size), "F16"),
                    TensorSpec(p + "post_attention_norm.weight", (E,), "F32", "ones"),
                ]
            out += [
                TensorSpec(p + "ffn_gate.weight", (F, E), "F16"),
                TensorSpec(p + "ffn_up.weight", (F, E), "F16"),
                TensorSpec(p + "ffn_down.weight", (E, F), "F16"),
            ]
        out.append(TensorSpec("output_norm.weight", (E,), "F32", "ones"))
        if not self.tied_embeddings:
            out.append(TensorSpec("output.weight", (V, E), "F16"))
        return out

    def gguf_metadata(self) -> dict[str, object]:
        """The architecture's GGUF keys exactly as the writer writes them (python int -> UINT32, float ->
        FLOAT32, bool -> BOOL, list -> ARRAY). A plan for `--like PRESET` parses this same dict, so a preset
        and the file synth writes from it are read by one parser."""
        a = self.arch
        meta: dict[str, object] = {
            f"{a}.context_length": self.context_length,
            f"{a}.embedding_length": self.n_embd,
            f"{a}.block_count": self.n_layer,
            f"{a}.feed_forward_length": self.n_ff,
            f"{a}.attention.head_count": self.n_head,
            f"{a}.attention.head_count_kv": self.n_head_kv,
            f"{a}.attention.key_length": self.head_dim,
            f"{a}.attention.value_length": self.head_dim,
            f"{a}.attention.layer_norm_rms_epsilon": float(self.rms_norm_eps),
            f"{a}.rope.freq_base": float(self.rope_theta),
            f"{a}.rope.dimension_count": self.n_rot,
            f"{a}.vocab_size": self.n_vocab,
        }
        if a == "qwen35":
            meta.update({
                f"{a}.rope.dimension_sections": list(self.rope_sections),
                f"{a}.full_attention_interval": self.full_attention_interval,
                f"{a}.ssm.conv_kernel": self.conv_kernel,
                f"{a}.ssm.state_size": self.state_size,
                f"{a}.ssm.group_count": self.group_count,
                f"{a}.ssm.time_step_rank": self.time_step_rank,
                f"{a}.ssm.inner_size": self.inner_size,
            })
        return meta

    def n_params(self) -> int:
        """Exact number of parameters written to the GGUF file (see the module docstring)."""
        return sum(t.n_elements for t in self.tensors())

    def f16_bytes(self) -> int:
        """Bytes of tensor data in the F16 file (without header and alignment padding)."""
        return sum(t.nbytes for t in self.tensors())

    def kv_bytes_per_token(self, bytes_per_element: int = 2) -> int:
        """KV cache per token (K and V, attention layers only), at the given element size."""
        return 2 * self.n_head_kv * self.head_dim * bytes_per_element * self.n_attention_layers


# `<unk>`, `<s>`, `</s>` and the 256 byte tokens: the smallest vocabulary llama.cpp accepts.
N_BASE_TOKENS = 3 + 256

_QWEN35_COMMON = dict(
    arch="qwen35", n_vocab=248320, head_dim=256, rope_theta=10_000_000.0, context_length=262144,
    rms_norm_eps=1e-6, full_attention_interval=4, partial_rotary_factor=0.25, conv_kernel=4,
    state_size=128, group_count=16,
)

PRESETS: dict[str, ModelShape] = {
    # ---- tiny, for tests and smoke runs: a few MB, widths multiples of 256 so K-quants apply ----
    "tiny-qwen35": ModelShape(
        name="tiny-qwen35", arch="qwen35", n_vocab=2048, n_embd=256, n_layer=4, n_ff=512,
        n_head=2, n_head_kv=1, head_dim=128, rope_theta=10_000_000.0, context_length=4096,
        tied_embeddings=True, full_attention_interval=4, partial_rotary_factor=0.25, conv_kernel=4,
        state_size=128, group_count=1, time_step_rank=2,
        source="synthetic: Qwen3.5 layout (3 DeltaNet + 1 attention) at toy width",
    ),
    "tiny-llama": ModelShape(
        name="tiny-llama", arch="llama", n_vocab=2048, n_embd=256, n_layer=4, n_ff=512,
        n_head=4, n_head_kv=2, head_dim=64, rope_theta=10_000.0, context_length=4096,
        tied_embeddings=False, rms_norm_eps=1e-5,
        source="synthetic: Llama layout at toy width, untied LM head",
    ),
    # ---- real shapes (text decoder only; see module docstring for what n_params counts) ----
    "qwen3.5-0.8b": ModelShape(
        name="qwen3.5-0.8b", n_embd=1024, n_layer=24, n_ff=3584, n_head=8, n_head_kv=2,
        tied_embeddings=True, time_step_rank=16, **_QWEN35_COMMON,
        source="Qwen/Qwen3.5-0.8B config.json text_config, as mirrored in two independent public "
               "test fixtures (a C++ Qwen35Config test and a Lean Qwen35 config): hidden 1024, "
               "24 layers, 8/2 heads, head_dim 256, FFN 3584, linear key/value heads 16/16, "
               "head dims 128, conv 4, vocab 248320, tied, mrope_section [11,11,10]",
    ),
    "qwen3.5-2b": ModelShape(
        name="qwen3.5-2b", n_embd=2048, n_layer=24, n_ff=6144, n_head=8, n_head_kv=2,
        tied_embeddings=True, time_step_rank=16, **_QWEN35_COMMON,
        source="apxml.com/models/qwen35-2b (hidden 2048, 24 layers, 8/2 heads, head_dim 256, "
               "FFN 6144, vocab 248320, theta 1e7) and a public qwen3_5 test fixture with the "
               "same widths giving linear key/value heads 16/16; tied. Cross-checked: unsloth "
               "Qwen3.5-2B-Q4_K_M.gguf is 1,280,835,840 bytes, which this shape reproduces "
               "(32 value heads would add ~0.14 GB)",
    ),
    "qwen3.5-4b": ModelShape(
        name="qwen3.5-4b", n_embd=2560, n_layer=32, n_ff=9216, n_head=16, n_head_kv=4,
        tied_embeddings=True, time_step_rank=32, **_QWEN35_COMMON,
        source="Qwen/Qwen3.5-4B config.json (shared/reference/qwen35-gguf.md; also public "
               "Qwen3_5ForCausalLM copies): hidden 2560, 32 layers, 16/4 heads, head_dim 256, "
               "linear key/value heads 16/32, head dims 128, conv 4, FFN 9216, vocab 248320, "
               "tied, ctx 262144",
    ),
    "qwen3.5-9b": ModelShape(
        name="qwen3.5-9b", n_embd=4096, n_layer=32, n_ff=12288, n_head=16, n_head_kv=4,
        tied_embeddings=False, time_step_rank=32, **_QWEN35_COMMON,
        source="Qwen3.5-9B text_config as published in fine-tune configs naming Qwen/Qwen3.5-9B "
               "as base (hidden 4096, FFN 12288, head_dim 256, linear key/value heads 16/32, "
               "conv 4, 32 layers) and the HF Qwen3_5TextConfig defaults (16/4 heads, vocab "
               "248320, untied). Untied is inferred from unsloth Qwen3.5-9B-Q4_K_M.gguf = "
               "5,680,522,464 bytes (tied would be ~0.6 GB smaller)",
    ),
    "llama-3.2-1b": ModelShape(
        name="llama-3.2-1b", arch="llama", n_vocab=128256, n_embd=2048, n_layer=16, n_ff=8192,
        n_head=32, n_head_kv=8, head_dim=64, rope_theta=500_000.0, context_length=131072,
        tied_embeddings=True, rms_norm_eps=1e-5,
        source="meta-llama/Llama-3.2-1B config.json: hidden 2048, 16 layers, 32/8 heads, "
               "head_dim 64, FFN 8192, vocab 128256, theta 5e5, tied (llama3 rope scaling "
               "omitted: it does not change the compute)",
    ),
}
