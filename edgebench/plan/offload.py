"""Where llama.cpp puts each buffer when layers are offloaded to a GPU, and what fits a card.

The rules are llama.cpp's (src/llama-model.cpp load_tensors, src/llama-context.cpp):
- `-ngl N` offloads the last N-1 repeating layers plus the output layer (i_gpu_start = n_layer + 1 - N;
  -1 means all); the input layer (token embeddings) always stays on the CPU. With tied embeddings the
  output layer is a second copy of the embedding matrix, on the GPU;
- `n_cpu_moe` keeps the routed experts of the first N layers in host memory even when their layer is
  offloaded;
- each layer's KV cache and recurrent state follow the layer (offload_kqv, llama.cpp's default);
- the GPU backend reserves its own compute buffer: the worst-case graph as on the CPU, and with no layer
  offloaded still the output matmul, which llama.cpp runs on the GPU with the weight copied in (op offload);
- the GPU runtime's own fixed cost (CUDA context, cuBLAS workspace, llama.cpp's pool and CUDA graphs) is not
  one of llama.cpp's buffers. It was measured as the engine's true peak (NVML's free memory before the
  process less the lowest free memory it read) less llama.cpp's CUDA0 buffers, on an H100 with CUDA 13
  (tests/perf/data/h100-vram.json): the CUDA context alone is 527 MiB; after tg128 with layers on the card
  596-603 MiB over 12 settings of three models, after pp512 614-616 MiB; with no layer offloaded 529-533
  after tg128 and 624-653 after pp512. An H200's tg128 runs (tests/perf/data/h200-vram.json, nvidia-smi's
  process listing, which shows 9 MiB less than the card loses on the H100) read 589 with layers offloaded,
  598 with those 9 MiB. A device profile can set its own (`gpu.runtime_mib`) for another stack.
On a unified-memory device (Jetson, Apple silicon) both sides draw on the one pool of RAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgebench.models.gguf_info import ModelInfo
from edgebench.plan.memory import (
    MIB,
    MemoryItem,
    Runtime,
    kv_layer_bytes,
    max_context,
    memory_items,
    swa_cells,
    total,
)

# measured on an H100 and an H200 (see the module docstring): the engine process's VRAM beyond llama.cpp's
# own buffers after tg128 with layers on the card (was 556, the median of nvidia-smi samples of tg16 runs)
GPU_RUNTIME_BYTES = 598 * MIB
# llama-fit-params' default --fit-target: what is left free on the card
DEFAULT_MARGIN_BYTES = 1024 * MIB
STATE_BYTES = 4
_INPUT_TENSORS = ("token_embd.weight", "pos_embd.weight", "per_layer_token_embd.weight")


@dataclass(frozen=True)
class Split:
    """Which layers llama.cpp puts on the GPU for one n_gpu_layers."""

    n_gpu_layers: int          # as asked; -1 = all
    gpu_layers: frozenset      # layer indices on the GPU
    output_on_gpu: bool

    @property
    def all(self) -> bool:
        return self.output_on_gpu and len(self.gpu_layers) > 0 and min(self.gpu_layers) == 0


def split(info: ModelInfo, n_gpu_layers: int) -> Split:
    n_layer = info.n_layer
    ngl = n_layer + 1 if n_gpu_layers < 0 else min(n_gpu_layers, n_layer + 1)
    start = n_layer + 1 - ngl
    return Split(n_gpu_layers, frozenset(range(max(start, 0), n_layer)), ngl >= 1)


def _layer_of(name: str) -> int | None:
    if not name.startswith("blk."):
        return None
    return int(name.split(".", 2)[1])


def _placer(info: ModelInfo, where: Split, n_cpu_moe: int):
    """Whether llama.cpp puts a tensor on the GPU: its layer's side, except the input tensors (always the
    CPU) and the routed experts of the first n_cpu_moe MoE layers."""
    cpu_experts = set([x.index for x in info.layers if x.expert_bytes][:n_cpu_moe])

    def on_gpu(name: str) -> bool:
        layer = _layer_of(name)
        if layer is None:
            return name not in _INPUT_TENSORS and where.output_on_gpu
        return layer in where.gpu_layers and not ("_exps" in name and layer in cpu_experts)
    return on_gpu


def weight_bytes(info: ModelInfo, where: Split, n_cpu_moe: int) -> tuple[int, int]:
    """(GPU bytes, host bytes) of the weights."""
    on_gpu = _placer(info, where, n_cpu_moe)
    gpu = host = 0
    for t in info.tensors:
        if on_gpu(t.name):
            gpu += t.n_bytes
        else:
            host += t.n_bytes
    if where.output_on_gpu and info.tied_embeddings:
        # the output layer reads the embedding matrix: llama.cpp gives the GPU its own copy
        gpu += next((t.n_bytes for t in info.tensors if t.name == "token_embd.weight"), 0)
    return gpu, host


def _output_weight_bytes(info: ModelInfo) -> int:
    name = "token_embd.weight" if info.tied_embeddings else "output.weight"
    return next((t.n_bytes for t in info.tensors if t.name == name), 0)


def gpu_items(info: ModelInfo, runtime: Runtime, where: Split, runtime_bytes: int = GPU_RUNTIME_BYTES
              ) -> list[MemoryItem]:
    """What the GPU holds: weights, the offloaded layers' KV and state, its compute buffer, the runtime."""
    gpu_weights, _ = weight_bytes(info, where, runtime.n_cpu_moe)
    layers = [x for x in info.layers if x.index in where.gpu_layers]
    full = sum(kv_layer_bytes(x, runtime.kv_type) for x in layers if x.attention == "full")
    sliding = sum(kv_layer_bytes(x, runtime.kv_type) for x in layers if x.attention not in ("", "full"))
    state = sum(x.r_size + x.s_size for x in layers) * STATE_BYTES * runtime.n_seq
    cpu_compute = next(i for i in memory_items(info, runtime) if i.name == "compute buffer")
    # llama.cpp reserves the same worst-case graph on the GPU; with nothing offloaded the output matmul
    # still runs there (op offload), with the output weight copied into the buffer
    extra = 0 if where.gpu_layers or where.output_on_gpu else _output_weight_bytes(info)
    compute = MemoryItem("GPU compute buffer", (cpu_compute.reserved_fixed or cpu_compute.fixed) + extra,
                         cpu_compute.per_token, "the worst-case graph llama.cpp reserves on the GPU"
                         + ("; with no layer offloaded it still runs the output matmul there" if extra else ""),
                         capped_per_token=cpu_compute.capped_per_token, cap=cpu_compute.cap)
    if cpu_compute.reserved_is_peak or not where.all:
        # one peak, reached at the logits or at the attention, not both (memory._compute_item); with only
        # some layers offloaded the masks live in the host's buffer, so the GPU's stays at its peak too
        # (llama.cpp's CUDA0 compute on an H200: qwen35 at ngl 4 is 499 MiB at 4K and 495 MiB at 32K)
        base = (cpu_compute.reserved_fixed or 0) + extra
        compute = MemoryItem(compute.name, cpu_compute.fixed + extra, cpu_compute.per_token, compute.note,
                             capped_per_token=cpu_compute.capped_per_token, cap=cpu_compute.cap,
                             reserved_fixed=base, reserved_is_peak=True)
    cap = swa_cells(info, runtime)
    return [
        MemoryItem("GPU weights", gpu_weights, 0.0, _where_text(info, where)),
        MemoryItem("GPU KV cache", 0, full * runtime.n_seq, "the offloaded layers' cache",
                   capped_per_token=sliding * runtime.n_seq, cap=cap),
        MemoryItem("GPU recurrent state", state, 0.0, "the offloaded layers' state, F32"),
        compute,
        MemoryItem("GPU runtime", runtime_bytes, 0.0, "CUDA context and workspaces (measured, see plan/offload.py)"),
    ]


def _where_text(info: ModelInfo, where: Split) -> str:
    n = len(where.gpu_layers)
    text = f"{n} of {info.n_layer} layers" + (" + output" if where.output_on_gpu else "")
    return text + ("; tied embeddings: the output's copy of them too" if where.output_on_gpu
                   and info.tied_embeddings else "")


def host_items(info: ModelInfo, runtime: Runtime, where: Split) -> list[MemoryItem]:
    """What stays in RAM: the CPU plan, less what moved to the GPU."""
    items = {i.name: i for i in memory_items(info, runtime)}
    _, host_weights = weight_bytes(info, where, runtime.n_cpu_moe)
    cpu_layers = [x for x in info.layers if x.index not in where.gpu_layers]
    full = sum(kv_layer_bytes(x, runtime.kv_type) for x in cpu_layers if x.attention == "full")
    sliding = sum(kv_layer_bytes(x, runtime.kv_type) for x in cpu_layers if x.attention not in ("", "full"))
    state = sum(x.r_size + x.s_size for x in cpu_layers) * STATE_BYTES * runtime.n_seq
    compute = items["compute buffer"]
    return [
        MemoryItem("host weights", host_weights, 0.0, "the input embeddings and the layers left on the CPU"),
        MemoryItem("host KV cache", 0, full * runtime.n_seq, f"{len(cpu_layers)} layers on the CPU",
                   capped_per_token=sliding * runtime.n_seq, cap=swa_cells(info, runtime)),
        MemoryItem("host recurrent state", state, 0.0, "F32"),
        items["output buffer"],
        # the host side of the graph: inputs and masks in pinned memory (the CPU's activations when
        # layers stay there)
        MemoryItem("host compute buffer", compute.fixed if cpu_layers else 0, compute.per_token,
                   "inputs, masks and the CPU layers' activations",
                   capped_per_token=compute.capped_per_token, cap=compute.cap),
        items["runtime overhead"],
    ]


@dataclass(frozen=True)
class GpuPlan:
    """One model at one n_gpu_layers on one card."""

    split: Split
    gpu: list
    host: list
    vram_bytes: int | None     # the card (None: unknown)
    unified: bool
    margin_bytes: int

    def vram_at(self, n_ctx: int) -> int:
        return sum(i.allocated(n_ctx) for i in self.gpu)

    def host_at(self, n_ctx: int) -> int:
        return total(self.host).at(n_ctx)

    def fits(self, n_ctx: int, host_budget: int | None) -> bool | None:
        """Against the card less the margin, and the host's RAM; on a unified device, both in one pool."""
        if self.vram_bytes is None:
            return None
        if self.unified:
            pool = min(self.vram_bytes, host_budget) if host_budget is not None else self.vram_bytes
            return self.vram_at(n_ctx) + self.host_at(n_ctx) <= pool - self.margin_bytes
        gpu_ok = self.vram_at(n_ctx) <= self.vram_bytes - self.margin_bytes
        return gpu_ok and (host_budget is None or self.host_at(n_ctx) <= host_budget)


def gpu_plan(info: ModelInfo, runtime: Runtime, n_gpu_layers: int, vram_bytes: int | None, unified: bool = False,
             margin_bytes: int = DEFAULT_MARGIN_BYTES, runtime_bytes: int = GPU_RUNTIME_BYTES) -> GpuPlan:
    where = split(info, n_gpu_layers)
    return GpuPlan(where, gpu_items(info, runtime, where, runtime_bytes), host_items(info, runtime, where),
                   vram_bytes, unified, margin_bytes)


def max_gpu_layers(info: ModelInfo, runtime: Runtime, n_ctx: int, vram_bytes: int, unified: bool,
                   host_budget: int | None, margin_bytes: int = DEFAULT_MARGIN_BYTES,
                   runtime_bytes: int = GPU_RUNTIME_BYTES) -> int | None:
    """The most layers (llama.cpp's n_gpu_layers, up to n_layer + 1 = all) that fit at n_ctx; None when not
    even the CPU-only placement fits."""
    best = None
    for ngl in range(info.n_layer + 2):
        plan = gpu_plan(info, runtime, ngl, vram_bytes, unified, margin_bytes, runtime_bytes)
        if plan.fits(n_ctx, host_budget):
            best = ngl
        elif best is not None:
            break  # more layers only take more VRAM
    return best


def max_gpu_context(info: ModelInfo, runtime: Runtime, n_gpu_layers: int, vram_bytes: int, unified: bool,
                    host_budget: int | None, margin_bytes: int = DEFAULT_MARGIN_BYTES,
                    runtime_bytes: int = GPU_RUNTIME_BYTES) -> int:
    """The largest context (multiple of 256, at most the trained one) that fits at n_gpu_layers; 0: none."""
    plan = gpu_plan(info, runtime, n_gpu_layers, vram_bytes, unified, margin_bytes, runtime_bytes)
    native = info.context_length or 0
    pool = vram_bytes - margin_bytes
    gpu = total([_as_allocated(i) for i in plan.gpu])
    if unified:
        both = total([_as_allocated(i) for i in plan.gpu] + plan.host)
        budget = min(pool, host_budget - margin_bytes) if host_budget is not None else pool
        return max_context(both, budget, native)
    n = max_context(gpu, pool, native)
    if host_budget is not None:
        n = min(n, max_context(total(plan.host), host_budget, native))
    return n


def _as_allocated(item: MemoryItem) -> MemoryItem:
    """The item at llama.cpp's reserved size, as a plain affine item (VRAM is reserved, not touched)."""
    if item.reserved_fixed is None:
        return item
    if item.reserved_is_peak:
        # the peak's two phases: keep the larger fixed part and the growing part (an upper bound)
        return MemoryItem(item.name, max(item.reserved_fixed, item.fixed), item.per_token,
                          capped_per_token=item.capped_per_token, cap=item.cap)
    return MemoryItem(item.name, item.reserved_fixed, item.per_token, capped_per_token=item.capped_per_token,
                      cap=item.cap)


def cpu_share_of_reads(info: ModelInfo, where: Split, n_cpu_moe: int) -> float:
    """The fraction of the bytes read per generated token that stay in host memory (only the active experts
    and only the token's row of the input embeddings are read): generation runs at roughly the slower
    side's pace for its share, so this is what the speed loses as layers move back to the CPU."""
    on_gpu = _placer(info, where, n_cpu_moe)
    active = info.n_expert_used / info.n_expert if info.n_expert else 1.0
    gpu = host = 0.0
    for t in info.tensors:
        read = t.n_bytes * (active if "_exps" in t.name else 1.0)
        if t.name == "token_embd.weight" and info.tied_embeddings:
            # read whole by the output layer, from the GPU's copy when the output is there
            gpu, host = (gpu + read, host) if where.output_on_gpu else (gpu, host + read)
        elif t.name in _INPUT_TENSORS:
            host += read / max(info.n_vocab, 1)  # only the token's row
        elif on_gpu(t.name):
            gpu += read
        else:
            host += read
    return host / (gpu + host) if gpu + host else 0.0
