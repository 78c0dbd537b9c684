"""llama.cpp's own accounting of a GGUF file's memory: the oracle the plan is checked against.

`accounting(path, settings)` loads the model once in a child process (llama-cpp-python's
low-level API: llama.cpp's log callback is process-wide, so it is kept out of the test process),
creates one context per setting and parses the INFO lines llama.cpp logs while it allocates:

    llama_kv_cache: size = 8.00 MiB ( 4096 cells, 4 layers, 1/1 seqs), K (f16): 4.00 MiB, V ...
    llama_kv_cache_iswa: creating     SWA KV cache, size = 1024 cells
    llama_memory_recurrent: size = 12.56 MiB (1 cells, 8 layers, 1 seqs 0 rs_seq), R (f32): ...
    llama_context:        CPU  output buffer size =     0.95 MiB
    sched_reserve:        CPU compute buffer size =   504.02 MiB
    load_tensors:   CPU_Mapped model buffer size =    35.20 MiB

Generic over any GGUF llama.cpp loads: a new architecture is one more path to ask about.
Run as a script it prints the figures: python tests/llama_accounting.py MODEL.gguf 4096:f16 32768:q8_0
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass

KV_TYPE_IDS = {"f16": 1, "q8_0": 8, "q4_0": 2, "f32": 0}

_KV = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers")
_SWA_CELLS = re.compile(r"creating +(SWA|non-SWA) KV cache, size = (\d+) cells")
_RECURRENT = re.compile(r"llama_memory_recurrent: size = +([\d.]+) MiB")
_OUTPUT = re.compile(r"(\S+) +output buffer size = +([\d.]+) MiB")
_COMPUTE = re.compile(r"(\S+) compute buffer size = +([\d.]+) MiB")
_MODEL = re.compile(r"(\S+) model buffer size = +([\d.]+) MiB")


@dataclass(frozen=True)
class Setting:
    n_ctx: int
    kv_type: str = "f16"
    n_ubatch: int = 512
    swa_full: bool = False

    def text(self) -> str:
        return f"{self.n_ctx}:{self.kv_type}:{self.n_ubatch}:{int(self.swa_full)}"

    @classmethod
    def parse(cls, text: str) -> Setting:
        parts = text.split(":")
        n_ctx, kv = int(parts[0]), parts[1] if len(parts) > 1 else "f16"
        ubatch = int(parts[2]) if len(parts) > 2 else 512
        return cls(n_ctx, kv, ubatch, len(parts) > 3 and parts[3] == "1")


def parse_log(text: str) -> dict:
    """llama.cpp's figures (MiB) from its log of loading a model and creating one context."""
    kv = [(float(m.group(1)), int(m.group(2)), int(m.group(3))) for m in _KV.finditer(text)]
    cells = {m.group(1): int(m.group(2)) for m in _SWA_CELLS.finditer(text)}
    out = {
        "kv_mib": sum(k[0] for k in kv),
        "kv_caches": [{"mib": k[0], "cells": k[1], "layers": k[2]} for k in kv],
        "recurrent_mib": sum(float(m.group(1)) for m in _RECURRENT.finditer(text)),
        "output_mib": sum(float(m.group(2)) for m in _OUTPUT.finditer(text)),
        "compute_mib": sum(float(m.group(2)) for m in _COMPUTE.finditer(text)),
        "model_buffers_mib": {m.group(1): float(m.group(2)) for m in _MODEL.finditer(text)},
    }
    if "SWA" in cells:
        # iSWA: the non-SWA cache is logged first, then the SWA one (llama-kv-cache-iswa.cpp)
        out["swa_cells"] = cells["SWA"]
        out["kv_full_mib"] = kv[0][0] if kv else 0.0
        out["kv_swa_mib"] = kv[1][0] if len(kv) > 1 else 0.0
    else:
        out["kv_full_mib"], out["kv_swa_mib"] = out["kv_mib"], 0.0
    return out


def accounting(path, settings: list[Setting]) -> dict[Setting, dict]:
    """llama.cpp's figures for `path` at each setting (one model load, one context each)."""
    proc = subprocess.run([sys.executable, __file__, str(path), *(s.text() for s in settings)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"llama.cpp could not account for {path}:\n{proc.stderr[-3000:]}")
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return {s: found[s.text()] for s in settings}


def fit_params_host(binary: str, path, n_ctx: int, kv_type: str = "f16") -> dict:
    """llama.cpp's dry run (`llama-fit-params --fit-print on`: no_alloc, llama-server's defaults, so swa_full
    false), which prints host memory in whole MiB as `Host <model> <context> <compute>`. Its model figure
    is the tensors in host buffers (repacked ones are CPU_REPACK's), unlike the mapped-range size
    `CPU_Mapped model buffer size` logs."""
    done = subprocess.run([binary, "-m", str(path), "-c", str(n_ctx), "-ctk", kv_type, "-ctv", kv_type,
                           "--fit-print", "on", "-t", "2"], capture_output=True, text=True, timeout=300)
    words = done.stdout.split()
    if done.returncode != 0 or not words or words[0] != "Host":
        raise RuntimeError(f"llama-fit-params failed on {path}:\n{done.stderr[-2000:]}")
    model, context, compute = (float(x) for x in words[1:4])
    return {"model_mib": model, "context_mib": context, "compute_mib": compute}


def _main(argv: list[str]) -> int:
    import ctypes

    import llama_cpp as L

    chunks: list[str] = []

    def on_log(_level, text, _user):
        if text:
            chunks.append(text.decode(errors="replace"))

    callback = L.llama_log_callback(on_log)
    L.llama_log_set(callback, ctypes.c_void_p(0))
    L.llama_backend_init()
    model = L.llama_model_load_from_file(argv[0].encode(), L.llama_model_default_params())
    if not model:
        sys.stderr.write("".join(chunks))
        return 1
    load_log = "".join(chunks)
    results = {}
    for text in argv[1:]:
        setting = Setting.parse(text)
        chunks.clear()
        params = L.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = setting.n_ctx, 2048, setting.n_ubatch
        params.type_k = params.type_v = KV_TYPE_IDS[setting.kv_type]
        params.swa_full = setting.swa_full
        ctx = L.llama_init_from_model(model, params)
        if not ctx:
            sys.stderr.write("".join(chunks))
            return 1
        results[text] = parse_log(load_log + "".join(chunks))
        L.llama_free(ctx)
    L.llama_model_free(model)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
