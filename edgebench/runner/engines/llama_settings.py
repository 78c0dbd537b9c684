"""What both llama engines (in-process and llama-bench) share: llama.cpp's names for its settings, the
options that carry them, the row fields they fill and the keys that tell experiments apart. The
controller reads them through the engines' declarations, so each is defined once."""

from __future__ import annotations

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

# the system info is llama.cpp's CPU feature and build string (`AVX512 = 1 | AMX_INT8 = 0 | REPACK = 1`):
# two builds that differ in it run different kernels
COMPARE_KEYS = ("n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_gpu_layers", "n_cpu_moe", "repack",
                "swa_full", "system_info")


def row_fields(facts: dict) -> dict:
    """llama-bench's setting fields of a result row, from a cell's recorded options. One a record lacks
    (written before edgebench recorded it) reads as llama.cpp's default."""
    return {
        "n_batch": facts.get("n_batch"), "n_ubatch": facts.get("n_ubatch"), "type_k": facts.get("type_k"),
        "type_v": facts.get("type_v"), "n_gpu_layers": facts.get("n_gpu_layers"),
        "flash_attn": FLASH_ATTN.get(facts.get("flash_attn"), -1),
        "load_mode": "auto" if facts.get("use_mmap", True) else "none",
        "repack": bool(facts.get("repack", True)),
        "n_cpu_moe": int(facts.get("n_cpu_moe") or 0),
        "swa_full": bool(facts.get("swa_full", False)),
    }
