"""NVIDIA cards' free memory from NVML (libnvidia-ml, the library nvidia-smi reads), without a GPU context.

ggml's device query makes the calling process's GPU context before it answers, so what the engine
reads there already holds that context. NVML answers without one: read before the engine touches the
GPU, it gives the card's free memory without this process, and the drop from there to the engine's
lowest reading is all the process holds, context included. NVML's `free` (nvmlMemory_t, v1: reserved
memory counted as used) is the same quantity as CUDA's cudaMemGetInfo free.
"""

from __future__ import annotations

import ctypes
from typing import Dict, Optional, Tuple

_NAMES = ("libnvidia-ml.so.1", "libnvidia-ml.so", "nvml.dll")


class _Memory(ctypes.Structure):
    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def _library():
    for name in _NAMES:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def free_memory() -> Optional[Dict[int, Tuple[int, int]]]:
    """{NVML index: (free bytes, total bytes)} of every NVIDIA card, or None where NVML is not there."""
    lib = _library()
    if lib is None or lib.nvmlInit_v2() != 0:
        return None
    try:
        count = ctypes.c_uint()
        if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
            return None
        found = {}
        for i in range(count.value):
            handle, memory = ctypes.c_void_p(), _Memory()
            if lib.nvmlDeviceGetHandleByIndex_v2(i, ctypes.byref(handle)) == 0 and \
                    lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) == 0:
                found[i] = (memory.free, memory.total)
        return found
    finally:
        lib.nvmlShutdown()


# CUDA's total leaves out memory the driver reserves, which NVML's counts (an H100: 81079 against 81559 MiB)
_SAME_CARD = 0.02


def match(before: Dict[int, Tuple[int, int]], totals: Dict[str, int]) -> Dict[str, int]:
    """{ggml device name: free bytes before} where a card is told apart with certainty: the one card of
    about its size on each side (NVML counts cards by PCI bus, CUDA fastest first, so indices need not
    agree)."""
    def near(a, b):
        return abs(a - b) <= _SAME_CARD * max(a, b)

    found = {}
    for name, total in totals.items():
        cards = [free for free, size in before.values() if near(size, total)]
        rivals = [other for other in totals.values() if near(other, total)]
        if len(cards) == 1 and len(rivals) == 1:
            found[name] = cards[0]
    return found


__all__ = ["free_memory", "match"]
