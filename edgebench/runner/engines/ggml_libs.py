"""ggml's own shared libraries, from the folder the loaded libllama came from.

llama-cpp-python binds llama.h only; what llama-bench also calls from ggml (the backend registry,
the CPU threadpool) lives in libggml / libggml-base / libggml-cpu beside libllama, which the
dynamic loader has already mapped as its dependencies, so loading them again shares that state.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional


def folder() -> str:
    llama = sys.modules.get("llama_cpp.llama_cpp")
    return os.path.dirname(getattr(getattr(llama, "_lib", None), "_name", "") or "")


def load(base: str) -> Optional[ctypes.CDLL]:
    """lib<base> beside libllama, or None when it is not there (a static build)."""
    where = folder()
    for name in ("lib%s.so" % base, "lib%s.dylib" % base, "%s.dll" % base):
        path = os.path.join(where, name)
        if where and os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError:
                return None
    return None


def declare(lib: ctypes.CDLL, *signatures) -> ctypes.CDLL:
    """(name, argtypes, restype) for each function the caller uses."""
    for name, args, result in signatures:
        function = getattr(lib, name)
        function.argtypes, function.restype = args, result
    return lib
