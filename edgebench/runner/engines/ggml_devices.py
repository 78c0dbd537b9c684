"""The `backends` and `gpu_info` facts, read from ggml's backend registry as llama-bench reads them
(tools/llama-bench/llama-bench.cpp: get_backend, get_gpu_info), so rows from both engines agree.

- `backends`: the registered backends other than CPU (and RPC only when it has devices), joined
  by ","; "CPU" when there are none. A CUDA build says "CUDA" even at n_gpu_layers 0, as
  llama-bench does: it names the build, not the offload.
- `gpu_info`: the descriptions of the GPU and integrated-GPU devices, joined by ", ".
- `gpu_memory_mib`: {device name: total MiB} of those devices (the card's size, for the report).
- `gpu_memory()`: each discrete GPU's free and total memory now (the engine's readings, gpu_memory.py).

llama-cpp-python binds none of ggml's registry: the calls are declared here on libggml (ggml_libs).
"""

from __future__ import annotations

import ctypes

from . import ggml_libs

_DEVICE_GPU, _DEVICE_IGPU = 1, 3  # enum ggml_backend_dev_type: CPU, GPU, ACCEL, IGPU
UNKNOWN = "unknown"


_LOADED = []


def _libggml():
    """libggml with the registry's calls declared, loaded once (the engine reads memory at each stage)."""
    if not _LOADED:
        lib = _declared()
        if lib is None:
            return None  # libllama is not loaded yet (or a static build): ask again next time
        _LOADED.append(lib)
    return _LOADED[0]


def _declared():
    lib = ggml_libs.load("ggml")
    if lib is None:
        return None
    p, size = ctypes.c_void_p, ctypes.c_size_t
    return ggml_libs.declare(
        lib, ("ggml_backend_reg_count", [], size), ("ggml_backend_reg_get", [size], p),
        ("ggml_backend_reg_name", [p], ctypes.c_char_p), ("ggml_backend_reg_dev_count", [p], size),
        ("ggml_backend_dev_count", [], size), ("ggml_backend_dev_get", [size], p),
        ("ggml_backend_dev_type", [p], ctypes.c_int), ("ggml_backend_dev_name", [p], ctypes.c_char_p),
        ("ggml_backend_dev_description", [p], ctypes.c_char_p),
        ("ggml_backend_dev_memory", [p, ctypes.POINTER(size), ctypes.POINTER(size)], None))


def _text(raw) -> str:
    return raw.decode(errors="replace") if raw else ""


def backends() -> str:
    lib = _libggml()
    if lib is None:
        return UNKNOWN
    names, rpc_used = [], False
    for i in range(lib.ggml_backend_reg_count()):
        reg = lib.ggml_backend_reg_get(i)
        name = _text(lib.ggml_backend_reg_name(reg))
        if name.startswith("RPC"):
            rpc_used = rpc_used or lib.ggml_backend_reg_dev_count(reg) > 0
        elif name != "CPU":
            names.append(name)
    if rpc_used:
        names.append("RPC")
    return ",".join(names) if names else "CPU"


def _gpus(lib, kinds=(_DEVICE_GPU, _DEVICE_IGPU)):
    for i in range(lib.ggml_backend_dev_count()):
        dev = lib.ggml_backend_dev_get(i)
        if lib.ggml_backend_dev_type(dev) in kinds:
            yield dev


def gpu_info() -> str:
    lib = _libggml()
    if lib is None:
        return UNKNOWN
    return ", ".join(_text(lib.ggml_backend_dev_description(dev)) for dev in _gpus(lib))


def gpu_memory(kinds=(_DEVICE_GPU,)) -> dict:
    """{device name: (free bytes, total bytes)} of each GPU device, as the device reports them now. Only
    discrete GPUs by default: an integrated one reports the system's memory, which every process shares
    (its use is the engine's RSS)."""
    lib = _libggml()
    if lib is None:
        return {}
    found = {}
    for dev in _gpus(lib, kinds):
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        lib.ggml_backend_dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        found[_text(lib.ggml_backend_dev_name(dev))] = (free.value, total.value)
    return found


def gpu_memory_mib() -> dict:
    return {name: total // (1024 * 1024) for name, (_free, total) in gpu_memory((_DEVICE_GPU, _DEVICE_IGPU)).items()}
