"""llama.cpp's own description of its build (`llama_print_system_info`): CPU features the kernels
were compiled for and build options, e.g. `CPU : SSE3 = 1 | AVX2 = 1 | AMX_INT8 = 0 | REPACK = 1 |`.

The in-process engine asks its loaded libllama. A llama-bench binary does not print it, but when it
was built with shared libraries (as tests/perf/build_llama_bench.sh and llama-cpp-python build it),
the libllama beside it is the same build and can be asked.
"""

import ctypes
import os

_NAMES = ("libllama.so", "libllama.dylib", "llama.dll")


def system_info_of(lib):
    """The system info string of an already loaded libllama (ctypes handle)."""
    call = lib.llama_print_system_info
    call.restype = ctypes.c_char_p
    call.argtypes = []
    return (call() or b"").decode(errors="replace").strip()


def system_info_beside(binary):
    """The system info of the libllama next to a llama.cpp tool, or None for a static build."""
    here = os.path.dirname(os.path.realpath(binary))
    for folder in (here, os.path.join(here, "..", "lib")):
        for name in _NAMES:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                try:
                    return system_info_of(ctypes.CDLL(path))
                except (OSError, AttributeError):
                    return None
    return None
