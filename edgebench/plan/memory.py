"""The memory model: what llama.cpp (CPU backend) allocates and holds resident for one sequence.

Sized the way llama.cpp allocates (src/llama-kv-cache.cpp, llama-kv-cache-iswa.cpp,
llama-memory-recurrent.cpp, llama-context.cpp), layer by layer from ModelInfo.layers:
- the context is padded to 256 cells; each attention layer holds K and V at its own widths
  (MLA: the compressed K only); a layer that reuses another's cache (gemma3n) holds none;
- sliding-window layers hold PAD(min(n_ctx, n_swa + n_ubatch), 256) cells unless `swa_full`,
  so the total is affine in the context only until those caches saturate (`max_context` searches);
- recurrent layers hold r + s elements of F32 state per sequence, whatever the KV type;
- the output buffer holds one sequence's logits (n_vocab F32).

Figures are what the process touches (its RSS), not address space: llama.cpp reserves a compute
buffer sized for the worst graph (n_vocab x n_ubatch logits), but when only the last token's logits
are asked for (generation, llama-server, llama-cli) most of it is never written, and untouched
pages cost no RAM. `MemoryItem.allocated` gives the reserved figure, which is what llama.cpp logs.
Constants marked "fitted" come from tests/perf/plan_accuracy.py and tests/test_llama_accounting.py
on this llama.cpp (llama-cpp-python 0.3.36).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgebench.models.gguf_info import ModelInfo
from edgebench.runner.engines.llama_settings import KV_CACHE_TYPES

MIB = 1 << 20
KV_TYPES = tuple(KV_CACHE_TYPES)
# bytes per element of each KV cache type (block types: block bytes / block elements)
_KV_ELEMENT_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32,
                     "q4_1": 20 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32, "iq4_nl": 18 / 32}
# llama.cpp pads n_ctx (and the SWA cache) to a multiple of 256
CTX_PAD = 256
STATE_BYTES = 4  # recurrent state is F32 (llama-model.cpp create_memory: recurrent_type_r/s = F32)

# The engine process before any model: interpreter, runner, libllama/libggml code (fitted).
BASE_OVERHEAD = 36 * MIB
# llama.cpp's vocabulary tables (token strings, piece cache, maps) per token (fitted).
VOCAB_BYTES_PER_TOKEN = 200
# Activations of one ubatch that the CPU backend really writes, per token of the ubatch, in units
# of n_embd and n_ff floats (fitted; the reserved buffer is much larger, see module docstring).
COMPUTE_EMBD_FLOATS, COMPUTE_FF_FLOATS = 8, 3
# The compute buffer llama.cpp reserves (sched_reserve over the worst-case graph: n_ubatch tokens,
# all of them output). ggml-alloc reuses memory between nodes, so its peak is not a sum of tensors;
# it is set by the logits with the last hidden states alive beside them, or by the FFN's widest
# point. Fitted against llama.cpp's "CPU compute buffer size" (six families, 1K-32K cells):
# peak floats per ubatch token = max(n_vocab + 3 n_embd, 3 n_ff + 2 n_embd); the F16 masks below.
RESERVE_LOGITS_EMBD, RESERVE_FF, RESERVE_FF_EMBD = 3, 3, 2
# Architectures whose reserved compute buffer grows by the attention masks on top of the logits
# (fitted against llama.cpp's "CPU compute buffer size" at 1K-32K cells: qwen35 and deepseek2 grow by
# the mask; llama-3.2, gemma3, qwen3moe and lfm2 stay at the logits' figure once that is the larger).
MASKS_ALIVE_AT_LOGITS = {"qwen35", "qwen35moe", "qwen3next", "deepseek2"}

# Types the CPU backend repacks into an interleaved anonymous copy at load time, with the row count
# each layout needs (ggml-cpu repack.cpp, ggml_repack_get_optimal_repack_type): the mapped original
# stays in the page cache and, once read, in RSS as well. Which layouts exist depends on the CPU
# features the build and the CPU both have (ggml_cpu_has_*: compiled in AND found at run time).
REPACK_X86_AVX2 = {"Q4_0": 8, "Q4_K": 8, "IQ4_NL": 8, "MXFP4": 8}
# NEON with dotprod (4x4, 8x4) or i8mm (4x8, 8x8): the same types either way, only the layout differs
REPACK_ARM_DOTPROD = {"Q4_0": 4, "Q4_K": 8, "Q5_K": 8, "Q6_K": 8, "IQ4_NL": 4, "MXFP4": 4, "Q8_0": 4, "Q1_0": 4}
# what a probed CPU without the features the kernels need repacks: nothing
REPACK_NONE: dict = {}


def repack_rules(cpu_arch: str, features=None) -> dict:
    """type -> rows multiple that llama.cpp repacks on this CPU. `features`: the probed CPU features
    (cpuinfo names); None when unknown, then an edge device's usual ones (AVX2, or Arm dotprod)."""
    family = _arch_family(cpu_arch)
    if family == "x86_64":
        return REPACK_X86_AVX2 if features is None or "avx2" in features else REPACK_NONE
    if features is None or {"asimddp", "i8mm"} & set(features):
        return REPACK_ARM_DOTPROD
    return REPACK_NONE  # a Cortex-A72 (Pi 4) or A53: plain NEON has no repacked kernels


@dataclass(frozen=True)
class Runtime:
    """How the model is run: what changes memory besides the model and the context."""

    kv_type: str = "f16"
    n_ubatch: int = 512
    use_mmap: bool = True
    cpu_arch: str = "aarch64"      # decides which weights llama.cpp repacks; edge devices are arm64
    cpu_features: frozenset | None = None  # ... with these CPU features (None: unknown, the usual ones)
    n_seq: int = 1
    # llama-bench's and llama-server's default; llama.cpp's library default is true
    swa_full: bool = False
    # the first N MoE layers keep their experts in host memory (llama.cpp --n-cpu-moe); on a
    # CPU-only device every weight is host memory anyway, the split is for a GPU planner
    n_cpu_moe: int = 0


@dataclass(frozen=True)
class MemoryItem:
    name: str
    fixed: int           # bytes whatever the context
    per_token: float     # bytes per (padded) context token
    note: str = ""
    # in RSS but clean page cache the kernel drops under pressure: not counted when judging a fit
    reclaimable: bool = False
    # bytes per cell of a cache that stops growing at `cap` cells (a sliding window)
    capped_per_token: float = 0.0
    cap: int = 0
    # what llama.cpp allocates when it differs from what the process touches (the compute buffer)
    reserved_fixed: int | None = None
    # the reservation is one peak of the graph, reached either at the logits or at the attention
    # (activations + masks), not both at once (see _compute_item)
    reserved_is_peak: bool = False

    def at(self, n_ctx: int) -> int:
        return int(self.fixed + self._growing(n_ctx))

    def allocated(self, n_ctx: int) -> int:
        """The figure llama.cpp logs for this buffer."""
        if self.reserved_fixed is None:
            return self.at(n_ctx)
        if self.reserved_is_peak:
            return int(max(self.reserved_fixed, self.at(n_ctx)))
        return int(self.reserved_fixed + self._growing(n_ctx))

    def _growing(self, n_ctx: int) -> float:
        cells = padded(n_ctx)
        return self.per_token * cells + self.capped_per_token * min(cells, self.cap or cells)


def padded(n_ctx: int) -> int:
    return -(-int(n_ctx) // CTX_PAD) * CTX_PAD


def kv_element_bytes(kv_type: str) -> float:
    try:
        return _KV_ELEMENT_BYTES[kv_type]
    except KeyError:
        from edgebench.errors import PlanError
        raise PlanError(f"unknown KV cache type {kv_type!r}; choose one of {', '.join(KV_TYPES)}") from None


def kv_layer_bytes(layer, kv_type: str) -> float:
    """K and V of one cell of one layer's cache (0 when the layer has none of its own)."""
    if not layer.has_kv:
        return 0.0
    return (layer.n_embd_k_gqa + layer.n_embd_v_gqa) * kv_element_bytes(kv_type)


def kv_bytes_per_token(info: ModelInfo, kv_type: str, sliding: bool | None = None) -> float:
    """K and V of one cell on every layer that has a cache; `sliding` picks SWA or full layers only."""
    return sum(kv_layer_bytes(layer, kv_type) for layer in info.layers
               if sliding is None or (layer.attention not in ("", "full")) == sliding)


def swa_cells(info: ModelInfo, runtime: Runtime) -> int:
    """Cells of the sliding-window cache (llama-kv-cache-iswa.cpp), 0 for no cap (swa_full)."""
    if runtime.swa_full or not info.n_swa:
        return 0
    return padded(info.n_swa * runtime.n_seq + runtime.n_ubatch)


def recurrent_state_bytes(info: ModelInfo, n_seq: int = 1) -> int:
    """Recurrent state (llama-memory-recurrent.cpp): r + s elements per layer and sequence, F32."""
    return sum(layer.r_size + layer.s_size for layer in info.layers) * STATE_BYTES * n_seq


def expert_bytes_split(info: ModelInfo, n_cpu_moe: int) -> tuple[int, int]:
    """Routed-expert bytes of the first `n_cpu_moe` MoE layers (kept in host memory) and of the rest."""
    moe = [layer.expert_bytes for layer in info.layers if layer.expert_bytes]
    return sum(moe[:n_cpu_moe]), sum(moe[n_cpu_moe:])


def _repackable(t, rules: dict) -> bool:
    multiple = rules.get(t.type)
    return bool(multiple) and t.rows % multiple == 0


def _repacked(t, rules: dict) -> bool:
    # every matrix a matmul multiplies (the layers' and the output's); token_embd is only looked up (GET_ROWS),
    # which the repacked buffer cannot serve, so llama.cpp keeps it in the mapped file
    return _repackable(t, rules) and (t.name.startswith("blk.") or t.name == "output.weight")


def repacks(cpu_arch: str, features=None):
    """A test of whether llama.cpp's CPU backend on `cpu_arch` (with `features`) repacks a tensor."""
    rules = repack_rules(cpu_arch, features)
    return lambda tensor: _repacked(tensor, rules)


def repacked_bytes(info: ModelInfo, cpu_arch: str, experts: bool = False, features=None) -> int:
    """The interleaved copy llama.cpp's CPU backend makes of matmul weights of repackable types
    (with `experts`: of the routed-expert tensors only)."""
    repacked = repacks(cpu_arch, features)
    return sum(t.n_bytes for t in info.tensors if repacked(t) and (not experts or "_exps" in t.name))


def output_copy_bytes(info: ModelInfo, cpu_arch: str, features=None) -> int:
    """With tied embeddings the output layer multiplies by token_embd. llama.cpp creates that tensor a
    second time for the output layer (TENSOR_DUPLICATED) with the output layer's buffer types, so where
    the CPU repacks its type the output gets an interleaved copy of the whole table (measured on the Arm
    board: a Q6_K token_embd of 198.9 MiB, "repack tensor token_embd.weight with q6_K_8x8"), while the
    lookup keeps using the mapped original."""
    if not info.tied_embeddings:
        return 0
    embd = next((t for t in info.tensors if t.name == "token_embd.weight"), None)
    return embd.n_bytes if embd is not None and _repackable(embd, repack_rules(cpu_arch, features)) else 0


def mapped_original_bytes(info: ModelInfo, cpu_arch: str, features=None) -> int:
    """File pages of repacked tensors that stay mapped once loaded. llama.cpp maps the file, reads every
    tensor through the mapping, then unmaps what lies outside the span of the tensors used in place
    (llama-model-loader.cpp, unmap_fragment): a repacked tensor inside that span leaves its pages in RSS,
    one before or after it does not."""
    repacked = repacks(cpu_arch, features)
    in_place = [i for i, t in enumerate(info.tensors) if not repacked(t)]
    if not in_place:
        return 0
    first, last = in_place[0], in_place[-1]
    return sum(t.n_bytes for i, t in enumerate(info.tensors) if first < i < last and repacked(t))


def _arch_family(arch: str) -> str:
    arch = (arch or "").lower()
    if arch in ("x86_64", "amd64", "x86", "i686"):
        return "x86_64"
    return "aarch64"


def memory_items(info: ModelInfo, runtime: Runtime) -> list[MemoryItem]:
    repack = repacked_bytes(info, runtime.cpu_arch, features=runtime.cpu_features)
    output_copy = output_copy_bytes(info, runtime.cpu_arch, runtime.cpu_features)
    expert_repack = repacked_bytes(info, runtime.cpu_arch, experts=True, features=runtime.cpu_features)
    weights_note = "mapped file, used in place" if runtime.use_mmap else "read into memory"
    cpu_experts, other_experts = expert_bytes_split(info, runtime.n_cpu_moe)
    experts = cpu_experts + other_experts
    n_moe = sum(1 for layer in info.layers if layer.expert_bytes)
    full_layers = [x for x in info.layers if x.has_kv and x.attention == "full"]
    swa_layers = [x for x in info.layers if x.has_kv and x.attention not in ("", "full")]
    cap = swa_cells(info, runtime)
    swa_note = (f"{len(swa_layers)} layers, window {info.n_swa}: "
                + (f"{cap} cells at most" if cap else "full context (swa_full)"))
    items = [
        MemoryItem("weights", info.weight_bytes - experts - (repack - expert_repack), 0.0,
                   weights_note + (", dense part" if experts else "")),
    ]
    if experts:
        items.append(MemoryItem(
            "expert weights", experts - expert_repack, 0.0,
            f"{n_moe} MoE layers x {info.n_expert} experts, {info.n_expert_used} used per token"
            + (f"; n_cpu_moe {runtime.n_cpu_moe}: {_mib(cpu_experts)} of them stay in host memory"
               if runtime.n_cpu_moe else "")))
    items += [
        MemoryItem("repacked weights", repack + output_copy, 0.0,
                   f"CPU backend's interleaved copy ({_arch_family(runtime.cpu_arch)} kernels)"
                   + (f", {_mib(output_copy)} of it the output's copy of the tied embeddings" if output_copy else "")),
        # with mmap the repacked tensors' file pages were read once to repack them; those inside the
        # mapped span stay in RSS
        MemoryItem("mapped originals",
                   mapped_original_bytes(info, runtime.cpu_arch, runtime.cpu_features) if runtime.use_mmap else 0, 0.0,
                   "file pages read for repacking: in RSS, reclaimable", reclaimable=True),
        MemoryItem("KV cache", 0, kv_bytes_per_token(info, runtime.kv_type, sliding=False) * runtime.n_seq,
                   f"{len(full_layers)} full-attention layers of {info.n_layer}, {runtime.kv_type}"
                   + (", MLA compressed K only" if info.is_mla else "")),
    ]
    if swa_layers:
        items.append(MemoryItem("KV cache, sliding window", 0, 0.0, swa_note + f", {runtime.kv_type}",
                                capped_per_token=kv_bytes_per_token(info, runtime.kv_type, sliding=True)
                                * runtime.n_seq, cap=cap))
    items += [
        MemoryItem("recurrent state", recurrent_state_bytes(info, runtime.n_seq), 0.0,
                   f"{info.n_recurrent_layers} recurrent layers, F32, fixed per sequence"),
        MemoryItem("output buffer", info.n_vocab * 4 * runtime.n_seq, 0.0, "logits of the last token"),
        _compute_item(info, runtime, full_layers, swa_layers, cap),
        MemoryItem("runtime overhead", BASE_OVERHEAD + VOCAB_BYTES_PER_TOKEN * info.n_vocab, 0.0,
                   "process, libraries, vocabulary"),
    ]
    return items


def _compute_item(info: ModelInfo, runtime: Runtime, full_layers, swa_layers, cap: int) -> MemoryItem:
    ubatch = runtime.n_ubatch
    activations = ubatch * 4 * (COMPUTE_EMBD_FLOATS * info.n_embd + COMPUTE_FF_FLOATS * info.n_ff)
    peak_floats = max(info.n_vocab + RESERVE_LOGITS_EMBD * info.n_embd,
                      RESERVE_FF * info.n_ff + RESERVE_FF_EMBD * info.n_embd)
    # the attention masks (F16 with flash attention) span each cache for every ubatch token:
    # one over the full context, one over the sliding-window cells. ggml-alloc has usually freed
    # them before the logits are computed, so the reservation is the larger of the two phases
    # (logits, or activations + masks); in a few graphs they are alive together.
    return MemoryItem("compute buffer", activations, ubatch * 2 if full_layers else 0.0,
                      f"activations of a {ubatch}-token ubatch + attention mask; llama.cpp reserves "
                      f"{_mib(ubatch * 4 * peak_floats)} + masks (n_vocab x n_ubatch logits), mostly untouched",
                      capped_per_token=ubatch * 2 if swa_layers else 0.0, cap=cap,
                      reserved_fixed=ubatch * 4 * peak_floats,
                      reserved_is_peak=info.arch not in MASKS_ALIVE_AT_LOGITS)


def _mib(n: float) -> str:
    return f"{n / MIB:.1f} MiB"


@dataclass(frozen=True)
class Affine:
    """A total: fixed + per_token x cells + per capped cache, per_token x min(cells, cap).
    Affine in the padded context until the capped caches saturate."""

    fixed: int
    per_token: float
    capped: tuple = field(default=())   # ((per_token, cap), ...)

    def at(self, n_ctx: int) -> int:
        cells = padded(n_ctx)
        return int(self.fixed + self.per_token * cells
                   + sum(rate * min(cells, cap or cells) for rate, cap in self.capped))


def total(items: list[MemoryItem], rss: bool = False) -> Affine:
    """What must fit in RAM; with `rss`, what the process's peak RSS shows (reclaimable included)."""
    chosen = [i for i in items if rss or not i.reclaimable]
    return Affine(sum(i.fixed for i in chosen), sum(i.per_token for i in chosen),
                  tuple((i.capped_per_token, i.cap) for i in chosen if i.capped_per_token))


def max_context(mem: Affine, budget: int, native: int) -> int:
    """Largest n_ctx (a multiple of the padding, at most `native`) with mem.at(n_ctx) <= budget;
    0 when not even the smallest context fits. mem is non-decreasing in the context, piecewise
    affine (sliding-window caches stop growing), so the answer is found by bisection over blocks."""
    if mem.at(CTX_PAD) > budget:
        return 0
    growth = mem.per_token + sum(rate for rate, cap in mem.capped if not cap)
    if growth <= 0:
        return native
    # an upper bound: past it even the uncapped part alone exceeds the budget
    hi = int(budget // (growth * CTX_PAD)) + 1
    if native:
        hi = min(hi, -(-native // CTX_PAD))
    lo = 1  # in blocks of CTX_PAD; lo fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if mem.at(mid * CTX_PAD) <= budget:
            lo = mid
        else:
            hi = mid - 1
    n = lo * CTX_PAD
    return min(n, native) if native else n
