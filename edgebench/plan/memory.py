"""The memory model: what llama.cpp (CPU backend) holds resident for one sequence of n_ctx tokens.

Every item is either fixed or proportional to the padded context, so the total is affine in the
context and the largest context that fits is solved in closed form (`max_context`).

Hybrid models (qwen35: 3 Gated DeltaNet layers, then 1 full-attention layer) keep a KV cache on
their attention layers only; each DeltaNet layer keeps a fixed recurrent state per sequence (a short
convolution window plus a ds x inner_size delta-rule state, F32) whatever the context.

Figures are what the process touches (its RSS), not address space: llama.cpp reserves a compute
buffer sized for the worst graph (n_vocab x n_ubatch logits), but when only the last token's logits
are asked for (generation, llama-server, llama-cli) most of it is never written, and untouched
pages cost no RAM. Constants marked "fitted" come from tests/perf/plan_accuracy.py on this
llama.cpp (llama-cpp-python 0.3.36).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.gguf_info import ModelInfo
from edgebench.runner.engines.llama_settings import KV_CACHE_TYPES

MIB = 1 << 20
KV_TYPES = tuple(KV_CACHE_TYPES)
# bytes per element of each KV cache type (block types: block bytes / block elements)
_KV_ELEMENT_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32,
                     "q4_1": 20 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32}
# llama.cpp pads n_ctx to a multiple of 256 for the KV cache
CTX_PAD = 256

# The engine process before any model: interpreter, runner, libllama/libggml code (fitted).
BASE_OVERHEAD = 36 * MIB
# llama.cpp's vocabulary tables (token strings, piece cache, maps) per token (fitted).
VOCAB_BYTES_PER_TOKEN = 200
# Activations of one ubatch that the CPU backend really writes, per token of the ubatch, in units
# of n_embd and n_ff floats (fitted; the reserved buffer is much larger, see module docstring).
COMPUTE_EMBD_FLOATS, COMPUTE_FF_FLOATS = 8, 3

# Types the CPU backend repacks into an interleaved anonymous copy at load time (ggml-cpu
# repack.cpp): the mapped original stays in the page cache and, once read, in RSS as well.
REPACK_TYPES = {
    "x86_64": {"Q4_0", "Q4_K", "IQ4_NL"},                         # AVX2
    "aarch64": {"Q4_0", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "Q8_0"},  # NEON dotprod / i8mm
}


@dataclass(frozen=True)
class Runtime:
    """How the model is run: what changes memory besides the model and the context."""

    kv_type: str = "f16"
    n_ubatch: int = 512
    use_mmap: bool = True
    cpu_arch: str = "aarch64"      # decides which weights llama.cpp repacks; edge devices are arm64
    n_seq: int = 1


@dataclass(frozen=True)
class MemoryItem:
    name: str
    fixed: int           # bytes whatever the context
    per_token: float     # bytes per (padded) context token
    note: str = ""
    # in RSS but clean page cache the kernel drops under pressure: not counted when judging a fit
    reclaimable: bool = False

    def at(self, n_ctx: int) -> int:
        return int(self.fixed + self.per_token * padded(n_ctx))


def padded(n_ctx: int) -> int:
    return -(-int(n_ctx) // CTX_PAD) * CTX_PAD


def kv_element_bytes(kv_type: str) -> float:
    try:
        return _KV_ELEMENT_BYTES[kv_type]
    except KeyError:
        from edgebench.errors import PlanError
        raise PlanError(f"unknown KV cache type {kv_type!r}; choose one of {', '.join(KV_TYPES)}") from None


def kv_bytes_per_token(info: ModelInfo, kv_type: str) -> float:
    """K and V of one token on every attention layer (and only those)."""
    per_layer = info.n_head_kv * (info.key_length + info.value_length)
    return per_layer * info.n_attention_layers * kv_element_bytes(kv_type)


def recurrent_state_bytes(info: ModelInfo, n_seq: int = 1) -> int:
    """DeltaNet/SSM state, F32, per sequence: conv window (K-1) x (inner + 2 g ds) plus ds x inner."""
    if not info.n_recurrent_layers:
        return 0
    conv = max(info.ssm_conv_kernel - 1, 0) * (info.ssm_inner_size + 2 * info.ssm_group_count * info.ssm_state_size)
    delta = info.ssm_state_size * info.ssm_inner_size
    return (conv + delta) * 4 * info.n_recurrent_layers * n_seq


def repacked_bytes(info: ModelInfo, cpu_arch: str) -> int:
    """The interleaved copy llama.cpp's CPU backend makes of matmul weights of repackable types."""
    types = REPACK_TYPES.get(_arch_family(cpu_arch), set())
    return sum(t.n_bytes for t in info.tensors
               if t.type in types and t.rows % 8 == 0 and t.name != "token_embd.weight"
               and t.name.startswith("blk."))


def _arch_family(arch: str) -> str:
    arch = (arch or "").lower()
    if arch in ("x86_64", "amd64", "x86", "i686"):
        return "x86_64"
    return "aarch64"


def memory_items(info: ModelInfo, runtime: Runtime) -> list[MemoryItem]:
    repack = repacked_bytes(info, runtime.cpu_arch)
    weights_note = "mapped file, used in place" if runtime.use_mmap else "read into memory"
    activations = runtime.n_ubatch * 4 * (COMPUTE_EMBD_FLOATS * info.n_embd + COMPUTE_FF_FLOATS * info.n_ff)
    # the attention mask (F16 with flash attention) spans the whole context for every ubatch token
    mask_per_token = runtime.n_ubatch * 2 if info.n_attention_layers else 0
    return [
        MemoryItem("weights", info.weight_bytes - repack, 0.0, weights_note),
        MemoryItem("repacked weights", repack, 0.0,
                   f"CPU backend's interleaved copy ({_arch_family(runtime.cpu_arch)} kernels)"),
        # with mmap the repacked tensors' file pages were read once to repack them
        MemoryItem("mapped originals", repack if runtime.use_mmap else 0, 0.0,
                   "file pages read for repacking: in RSS, reclaimable", reclaimable=True),
        MemoryItem("KV cache", 0, kv_bytes_per_token(info, runtime.kv_type) * runtime.n_seq,
                   f"{info.n_attention_layers} attention layers of {info.n_layer}, {runtime.kv_type}"),
        MemoryItem("recurrent state", recurrent_state_bytes(info, runtime.n_seq), 0.0,
                   f"{info.n_recurrent_layers} recurrent layers, F32, fixed per sequence"),
        MemoryItem("output buffer", info.n_vocab * 4 * runtime.n_seq, 0.0, "logits of the last token"),
        MemoryItem("compute buffer", activations, mask_per_token,
                   f"activations of a {runtime.n_ubatch}-token ubatch + attention mask"),
        MemoryItem("runtime overhead", BASE_OVERHEAD + VOCAB_BYTES_PER_TOKEN * info.n_vocab, 0.0,
                   "process, libraries, vocabulary"),
    ]


@dataclass(frozen=True)
class Affine:
    fixed: int
    per_token: float

    def at(self, n_ctx: int) -> int:
        return int(self.fixed + self.per_token * padded(n_ctx))


def total(items: list[MemoryItem], rss: bool = False) -> Affine:
    """What must fit in RAM; with `rss`, what the process's peak RSS shows (reclaimable included)."""
    chosen = [i for i in items if rss or not i.reclaimable]
    return Affine(sum(i.fixed for i in chosen), sum(i.per_token for i in chosen))


def max_context(mem: Affine, budget: int, native: int) -> int:
    """Largest n_ctx (a multiple of the padding, at most `native`) with mem.at(n_ctx) <= budget;
    0 when not even the smallest context fits. Solved: mem is affine in the padded context."""
    if mem.at(CTX_PAD) > budget:
        return 0
    if mem.per_token <= 0:
        return native
    blocks = int((budget - mem.fixed) // (mem.per_token * CTX_PAD))
    n = blocks * CTX_PAD
    # float rounding at the boundary: step back until it truly fits
    while n > CTX_PAD and mem.at(n) > budget:
        n -= CTX_PAD
    return min(n, native) if native else n
