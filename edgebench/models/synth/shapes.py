"""Model shapes: every dimension llama.cpp needs to lay out a model, and nothing about its weights.

A `ModelShape` fixes the GGUF metadata and the exact tensor list (names, shapes, dtypes) of a
synthetic model. These architectures are supported, as llama.cpp (the one vendored in
llama-cpp-python 0.3.36) expects them:

* ``qwen35`` -- Qwen3.5 dense: hybrid Gated DeltaNet (linear attention) + gated full attention.
  Layer ``i`` is full attention when ``(i + 1) % full_attention_interval == 0``, else DeltaNet.
* ``llama`` -- the plain Llama decoder.
* ``gemma3``, ``qwen3moe``, ``lfm2``, ``deepseek2`` -- each in its own module (gemma3.py, ...),
  which declares its layer pattern, tensors and GGUF keys; `ModelShape` holds the numbers.

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
from edgebench.models.synth import deepseek2, gemma3, lfm2, qwen3moe
from edgebench.models.synth.deepseek2 import LatentAttention
from edgebench.models.synth.experts import Experts
from edgebench.models.synth.gemma3 import SlidingWindow
from edgebench.models.synth.lfm2 import ShortConv
from edgebench.models.synth.tensor import TensorSpec

#: the families that live in their own module: layer pattern, tensors and GGUF keys
FAMILIES = {m.ARCH: m for m in (gemma3, qwen3moe, lfm2, deepseek2)}

ARCHES = ("qwen35", "llama", *FAMILIES)

#: a layer's token mixer: full attention, sliding-window attention, or a recurrent state
LayerKind = Literal["attention", "swa", "deltanet", "shortconv"]
ATTENTION_KINDS = ("attention", "swa")

__all__ = ["ARCHES", "FAMILIES", "PRESETS", "Experts", "LatentAttention", "ModelShape", "ShortConv",
           "SlidingWindow", "TensorSpec"]


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
    # other families: each its own part, None where the family has none ------------------------
    sliding_window: SlidingWindow | None = None  # gemma3
    experts: Experts | None = None  # qwen3moe, deepseek2
    short_conv: ShortConv | None = None  # lfm2
    latent_attention: LatentAttention | None = None  # deepseek2
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
        if self.arch in FAMILIES:
            problems += FAMILIES[self.arch].problems(self)
        if problems:
            raise SynthError(f"invalid model shape {self.name!r}: " + "; ".join(problems))

    # -- derived dimensions -------------------------------------------------------------------

    @property
    def n_rot(self) -> int:
        """Rotated dimensions per head (llama.cpp's ``rope.dimension_count``)."""
        if self.arch == "qwen35":
            return int(self.head_dim * self.partial_rotary_factor)
        if self.latent_attention is not None:
            return self.latent_attention.qk_rope_dim
        return self.head_dim

    @property
    def n_expert(self) -> int:
        return self.experts.n_expert if self.experts else 0

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
        """Each layer's token mixer, in order (MoE and MLA are properties of a layer, not kinds)."""
        if self.arch in FAMILIES:
            return FAMILIES[self.arch].layer_kinds(self)
        if self.arch == "llama":
            return ["attention"] * self.n_layer
        return ["attention" if (i + 1) % self.full_attention_interval == 0 else "deltanet"
                for i in range(self.n_layer)]

    @property
    def n_attention_layers(self) -> int:
        """Layers with a KV cache: full and sliding-window attention."""
        return sum(1 for k in self.layer_kinds() if k in ATTENTION_KINDS)

    @property
    def n_deltanet_layers(self) -> int:
        return sum(1 for k in self.layer_kinds() if k == "deltanet")

    @property
    def n_recurrent_layers(self) -> int:
        """Layers with a fixed-size state instead of a KV cache (DeltaNet, short convolution)."""
        return self.n_layer - self.n_attention_layers

    @property
    def min_layers(self) -> int:
        """The fewest layers llama.cpp runs: a qwen35 model needs one full-attention layer (its
        graph aborts without one), and layer ``interval - 1`` is the first; a family module says
        its own rule (`cut_problem`)."""
        if self.arch in FAMILIES:
            family = FAMILIES[self.arch]
            return next((n for n in range(1, self.n_layer + 1) if family.cut_problem(self, n) is None), self.n_layer)
        return self.full_attention_interval if self.arch == "qwen35" else 1

    def with_layers(self, n: int) -> ModelShape:
        """Same width, first ``n`` layers (so the attention/DeltaNet pattern is kept)."""
        if n < 1 or n > self.n_layer:
            raise SynthError(f"{self.name} has {self.n_layer} layers; cannot keep {n} (choose 1 to {self.n_layer})"
                             if self.min_layers == 1 else
                             f"{self.name} has {self.n_layer} layers; cannot keep {n} "
                             f"(choose {self.min_layers} to {self.n_layer})")
        refusal = FAMILIES[self.arch].cut_problem(self, n) if self.arch in FAMILIES else None
        if refusal:
            raise SynthError(refusal)
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
        family = FAMILIES.get(self.arch)
        if family is not None:
            for i in range(self.n_layer):
                out += family.block_tensors(self, i)
            out.append(TensorSpec(getattr(family, "OUTPUT_NORM", "output_norm.weight"), (E,), "F32", "ones"))
            if not self.tied_embeddings:
                out.append(TensorSpec("output.weight", (V, E), "F16"))
            return out
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
        if a in FAMILIES:
            meta.update(FAMILIES[a].metadata(self))
        return meta

    def n_params(self) -> int:
        """Exact number of parameters written to the GGUF file (see the module docstring)."""
        return sum(t.n_elements for t in self.tensors())

    def f16_bytes(self) -> int:
        """Bytes of tensor data in the F16 file (without header and alignment padding)."""
        return sum(t.nbytes for t in self.tensors())

    def kv_bytes_per_token(self, bytes_per_element: int = 2) -> int:
        """KV cache per token (K and V, every attention layer at full context), at the given element size."""
        meta = self.gguf_metadata()
        kv_heads = meta[f"{self.arch}.attention.head_count_kv"]
        kv_heads = max(kv_heads) if isinstance(kv_heads, list) else kv_heads
        per_head = meta[f"{self.arch}.attention.key_length"] + meta[f"{self.arch}.attention.value_length"]
        return kv_heads * per_head * bytes_per_element * self.n_attention_layers


# `<unk>`, `<s>`, `</s>` and the 256 byte tokens: the smallest vocabulary llama.cpp accepts.
N_BASE_TOKENS = 3 + 256

_QWEN35_COMMON = dict(
    arch="qwen35", n_vocab=248320, head_dim=256, rope_theta=10_000_000.0, context_length=262144,
    rms_norm_eps=1e-6, full_attention_interval=4, partial_rotary_factor=0.25, conv_kernel=4,
    state_size=128, group_count=16,
)

_GEMMA3_COMMON = dict(
    arch="gemma3", n_vocab=262144, n_head=4, n_head_kv=1, head_dim=256, rope_theta=1_000_000.0,
    context_length=32768, tied_embeddings=True, rms_norm_eps=1e-6,
    sliding_window=SlidingWindow(window=512, rope_base_local=10_000.0),
)

_LFM2_COMMON = dict(
    arch="lfm2", n_vocab=65536, n_layer=16, n_head_kv=8, head_dim=64, rope_theta=1_000_000.0,
    context_length=128000, tied_embeddings=True, rms_norm_eps=1e-5,
    short_conv=ShortConv(l_cache=3, attention_layers=(2, 5, 8, 10, 12, 14)),
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
    "tiny-gemma3": ModelShape(
        name="tiny-gemma3", arch="gemma3", n_vocab=2048, n_embd=256, n_layer=6, n_ff=512,
        n_head=2, n_head_kv=1, head_dim=128, rope_theta=1_000_000.0, context_length=4096,
        tied_embeddings=True, sliding_window=SlidingWindow(window=128, rope_base_local=10_000.0),
        source="synthetic: Gemma 3 layout (5 sliding-window layers, then the global layer 5) at toy width",
    ),
    "tiny-qwen3moe": ModelShape(
        name="tiny-qwen3moe", arch="qwen3moe", n_vocab=2048, n_embd=256, n_layer=2, n_ff=512,
        n_head=2, n_head_kv=1, head_dim=128, rope_theta=1_000_000.0, context_length=4096,
        tied_embeddings=False, experts=Experts(n_expert=4, n_expert_used=2, n_ff_exp=256),
        source="synthetic: Qwen3-MoE layout (4 experts, 2 used, untied head) at toy width",
    ),
    "tiny-lfm2": ModelShape(
        name="tiny-lfm2", arch="lfm2", n_vocab=2048, n_embd=256, n_layer=4, n_ff=512,
        n_head=4, n_head_kv=2, head_dim=64, rope_theta=1_000_000.0, context_length=4096,
        tied_embeddings=True, rms_norm_eps=1e-5, short_conv=ShortConv(l_cache=3, attention_layers=(2,)),
        source="synthetic: LFM2 layout (conv, conv, attention, conv) at toy width",
    ),
    "tiny-deepseek2": ModelShape(
        name="tiny-deepseek2", arch="deepseek2", n_vocab=2048, n_embd=256, n_layer=3, n_ff=512,
        n_head=2, n_head_kv=1, head_dim=192, rope_theta=10_000.0, context_length=4096,
        tied_embeddings=False,
        experts=Experts(n_expert=4, n_expert_used=2, n_ff_exp=256, n_shared=1, n_dense_lead=1, weights_scale=1.0),
        latent_attention=LatentAttention(kv_lora_rank=256, qk_rope_dim=64, qk_nope_dim=128, v_head_dim=128),
        source="synthetic: DeepSeek-V2-Lite layout (MLA without query compression, 1 dense layer, then MoE "
               "with a shared expert) at toy width",
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
    "gemma-3-270m": ModelShape(
        name="gemma-3-270m", n_embd=640, n_layer=18, n_ff=2048, **_GEMMA3_COMMON,
        source="google/gemma-3-270m config.json (as mirrored in public Gemma 3 270M ports): hidden 640, "
               "18 layers, 4/1 heads, head_dim 256, FFN 2048, vocab 262144, sliding_window 512, "
               "rope_theta 1e6 (global) / rope_local_base_freq 1e4 (local), ctx 32768, tied; llama.cpp "
               "names 18 layers LLM_TYPE_270M",
    ),
    "gemma-3-1b": ModelShape(
        name="gemma-3-1b", n_embd=1152, n_layer=26, n_ff=6912, **_GEMMA3_COMMON,
        source="google/gemma-3-1b-it config.json (a public gemma3_text test config with its real values): "
               "hidden 1152, 26 layers, 4/1 heads, head_dim 256, FFN 6912, sliding_window 512, "
               "sliding_window_pattern 6, rope_theta 1e6 / local 1e4, ctx 32768, vocab 262144, tied",
    ),
    "qwen3-30b-a3b": ModelShape(
        name="qwen3-30b-a3b", arch="qwen3moe", n_vocab=151936, n_embd=2048, n_layer=48, n_ff=6144,
        n_head=32, n_head_kv=4, head_dim=128, rope_theta=1_000_000.0, context_length=40960,
        tied_embeddings=False, experts=Experts(n_expert=128, n_expert_used=8, n_ff_exp=768),
        source="Qwen/Qwen3-30B-A3B config.json, cross-checked with a public Megatron recipe for it: hidden "
               "2048, 48 layers, 32/4 heads, head_dim 128, FFN 6144, moe_intermediate_size 768, 128 experts, "
               "8 per token, vocab 151936, rope_theta 1e6, ctx 40960, untied; llama.cpp names 48 layers "
               "LLM_TYPE_30B_A3B",
    ),
    "lfm2-350m": ModelShape(
        name="lfm2-350m", n_embd=1024, n_ff=4608, n_head=16, **_LFM2_COMMON,
        source="LiquidAI/LFM2-350M config.json (public copies): hidden 1024, 16 layers, 16/8 heads, "
               "block_ff_dim 6656 auto-adjusted (2/3, multiple of 256) to 4608 as the converter does, "
               "full_attn_idxs [2,5,8,10,12,14], conv_L_cache 3, vocab 65536, norm_eps 1e-5, rope_theta "
               "1e6, ctx 128000, tied; llama.cpp names n_ff 4608 LLM_TYPE_350M",
    ),
    "lfm2-1.2b": ModelShape(
        name="lfm2-1.2b", n_embd=2048, n_ff=8192, n_head=32, **_LFM2_COMMON,
        source="LiquidAI/LFM2-1.2B config.json (public copies): hidden 2048, 16 layers, 32/8 heads, "
               "block_ff_dim 12288 -> 8192, full_attn_idxs [2,5,8,10,12,14], conv_L_cache 3, vocab 65536, "
               "tied; llama.cpp names n_ff 8192 LLM_TYPE_1_2B",
    ),
    "deepseek-v2-lite": ModelShape(
        name="deepseek-v2-lite", arch="deepseek2", n_vocab=102400, n_embd=2048, n_layer=27, n_ff=10944,
        n_head=16, n_head_kv=1, head_dim=192, rope_theta=10_000.0, context_length=163840,
        tied_embeddings=False,
        experts=Experts(n_expert=64, n_expert_used=6, n_ff_exp=1408, n_shared=2, n_dense_lead=1, weights_scale=1.0),
        latent_attention=LatentAttention(kv_lora_rank=512, qk_rope_dim=64, qk_nope_dim=128, v_head_dim=128,
                                         yarn_factor=40.0, yarn_original_context=4096, yarn_mscale_all_dim=0.707),
        source="deepseek-ai/DeepSeek-V2-Lite config.json, cross-checked with a public Megatron recipe for it: "
               "hidden 2048, 27 layers, 16 heads, q_lora_rank null, kv_lora_rank 512, qk_nope 128, qk_rope "
               "64, v_head 128, FFN 10944, moe_intermediate_size 1408, 64 routed experts, 6 per token, 2 "
               "shared, first_k_dense_replace 1, routed_scaling_factor 1.0, vocab 102400, rope_theta 1e4 "
               "with YaRN x40 from 4096 (mscale_all_dim 0.707), ctx 163840, untied",
    ),
}


def shape_for(spec) -> ModelShape:
    """The shape a synth spec (spec.py) names: its preset, cut to its layers."""
    try:
        shape = PRESETS[spec.preset]
    except KeyError:
        raise SynthError(f"unknown synthetic preset {spec.preset!r}; "
                         f"known: {', '.join(sorted(PRESETS))}") from None
    return shape.with_layers(spec.layers) if spec.layers is not None else shape
