"""What both llama engines (in-process and llama-bench) share: llama.cpp's names for its settings, the
options that carry them, the row fields they fill and the keys that tell experiments apart. The
controller reads them through the engines' declarations, so each is defined once."""

from __future__ import annotations

from .cpu_mask import NO_MASK
from .declaration import Option

# KV cache types a profile may name (in the order messages list them) -> llama.cpp's ggml_type
KV_CACHE_TYPES = {"f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3, "iq4_nl": 20, "q5_0": 6, "q5_1": 7,
                  "f32": 0}
# flash attention as a profile says it -> llama_flash_attn_type, which is also what llama-bench's
# `-fa` takes and its `flash_attn` output field prints
FLASH_ATTN = {"auto": -1, "on": 1, "off": 0}

# named and defaulted as llama-bench names and defaults them
N_BATCH = Option("n_batch", "int", 2048, "logical batch size (llama-bench's -b)", at_least=1)
N_UBATCH = Option("n_ubatch", "int", 512, "physical batch size (llama-bench's -ub)", at_least=1)
TYPE_K = Option("type_k", "choice", "f16", "K cache type", choices=tuple(KV_CACHE_TYPES))
TYPE_V = Option("type_v", "choice", "f16", "V cache type", choices=tuple(KV_CACHE_TYPES))
FLASH_ATTN_OPTION = Option("flash_attn", "choice", "auto", "flash attention", choices=tuple(FLASH_ATTN),
                           aliases=((True, "on"), (False, "off")))
# -1: offload every layer (llama-cpp-python's convention; llama-bench users write 99)
N_GPU_LAYERS = Option("n_gpu_layers", "int", 0, "layers offloaded to a GPU; -1: all", at_least=-1)
# llama-bench's --repack (llama.cpp's use_extra_bufts): weights in repacked/AMX layouts. Off avoids
# extra-buffer kernels a CPU or VM advertises but cannot run
REPACK = Option("repack", "bool", True, "repacked/AMX weight layouts (llama-bench's --repack)")
# llama-bench's -ncmoe: the expert tensors of the first N layers stay in CPU memory when layers are
# offloaded (what lets a big MoE run with a small GPU)
N_CPU_MOE = Option("n_cpu_moe", "int", 0, "keep the MoE expert weights of the first N layers on the CPU "
                   "(llama-bench's -ncmoe)", at_least=0)
# the sliding-window layers' cache: false keeps only the window (+ a ubatch), as llama-bench (which
# hard-codes it), llama-server and llama-cli do; the library's own default is true, a full-size cache
SWA_FULL = Option("swa_full", "bool", False, "full-size cache for sliding-window layers (llama-server's "
                  "--swa-full; llama-bench always uses false)")
# where the threads run: llama-bench's -C/--cpu-mask and --cpu-strict (ggml's threadpool cpumask and
# strict_cpu). `cores` asks the controller for a mask from the device's probe instead (sweep/cores.py)
CPU_MASK = Option("cpu_mask", "mask", NO_MASK, "CPUs the threads may run on, as a hex mask (0xF0: CPUs 4-7; "
                  "llama-bench's -C); 0x0: wherever the OS puts them")
CPU_STRICT = Option("cpu_strict", "bool", False, "one CPU of the mask per thread, in turn (llama-bench's "
                    "--cpu-strict)", aliases=((0, False), (1, True)))
CORES = Option("cores", "choice", "all", "fastest: the device's fastest core cluster (from its probe) as the "
               "cpu_mask, and as many threads as it has cores unless threads is set", choices=("all", "fastest"))
CPU_OPTIONS = (CPU_MASK, CPU_STRICT, CORES)

# the system info is llama.cpp's CPU feature and build string (`AVX512 = 1 | AMX_INT8 = 0 | REPACK = 1`):
# two builds that differ in it run different kernels
COMPARE_KEYS = ("n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_gpu_layers", "n_cpu_moe", "repack",
                "swa_full", "cpu_mask", "cpu_strict", "system_info")
# the cell facts they record: `cores` is not one, the mask it became is
CPU_FACTS = ("cpu_mask", "cpu_strict")


def row_fields(facts: dict) -> dict:
    """llama-bench's setting fields of a result row, from a cell's recorded options (the controller's loader,
    results/model.py, gives a record written before an option was recorded that option's default)."""
    return {
        "n_batch": facts.get("n_batch"), "n_ubatch": facts.get("n_ubatch"), "type_k": facts.get("type_k"),
        "type_v": facts.get("type_v"), "n_gpu_layers": facts.get("n_gpu_layers"),
        "flash_attn": FLASH_ATTN.get(facts.get("flash_attn"), -1),
        "load_mode": "auto" if facts.get("use_mmap") else "none",
        "repack": bool(facts.get("repack")),
        "n_cpu_moe": int(facts.get("n_cpu_moe") or 0),
        "swa_full": bool(facts.get("swa_full")),
        "cpu_mask": facts.get("cpu_mask") or NO_MASK,
        "cpu_strict": bool(facts.get("cpu_strict")),
    }
