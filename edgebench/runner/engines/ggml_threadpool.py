"""A CPU threadpool attached to the context, as llama-bench attaches one.

Without one, ggml's CPU backend starts and joins a disposable pool of threads for every graph it
computes, a cost llama-bench does not pay: lost in the noise of a CPU-bound run, but a larger share
of a short graph with the layers on a GPU (a pp512 graph takes ~15 ms on an H200). The pool gets
ggml's defaults, which are llama-bench's (poll 50, normal priority), and llama-bench's -C/--cpu-strict:
the mask's CPUs in the pool's cpumask, and strict_cpu.

ggml pins each worker to the mask. The calling thread is worker 0: a build without OpenMP pins it when
the pool is made, an OpenMP build in each graph's parallel region, except for a single thread, which it
never pins. So the calling thread is pinned here too, before the pool is made (ggml's own placement then
overrides it where ggml makes one), and a single thread runs on the mask as it does without OpenMP.
"""

from __future__ import annotations

import ctypes
import os

from ..protocol import RunnerFailure
from . import ggml_libs
from .cpu_mask import mask_cpus

GGML_MAX_N_THREADS = 512


class _Params(ctypes.Structure):
    # struct ggml_threadpool_params (ggml.h)
    _fields_ = [("cpumask", ctypes.c_bool * GGML_MAX_N_THREADS), ("n_threads", ctypes.c_int),
                ("prio", ctypes.c_int), ("poll", ctypes.c_uint32), ("strict_cpu", ctypes.c_bool),
                ("paused", ctypes.c_bool)]


class Threadpool(object):
    """Attach with `attach(L, ctx, n_threads, cpu_mask, strict)`; `free()` after the context is freed."""

    def __init__(self):
        self._cpu = self._pool = None

    def attach(self, L, ctx, n_threads: int, cpu_mask: str = "0x0", strict: bool = False) -> bool:
        base, cpu = ggml_libs.load("ggml-base"), ggml_libs.load("ggml-cpu")
        if base is None or cpu is None or not hasattr(L._lib, "llama_attach_threadpool"):
            return False
        p = ctypes.c_void_p
        ggml_libs.declare(base, ("ggml_threadpool_params_init", [ctypes.POINTER(_Params), ctypes.c_int], None))
        ggml_libs.declare(cpu, ("ggml_threadpool_new", [ctypes.POINTER(_Params)], p),
                          ("ggml_threadpool_free", [p], None))
        ggml_libs.declare(L._lib, ("llama_attach_threadpool", [p, p, p], None))
        params = _Params()
        base.ggml_threadpool_params_init(ctypes.byref(params), int(n_threads))
        cpus = [c for c in mask_cpus(cpu_mask) if c < GGML_MAX_N_THREADS]
        for c in cpus:
            params.cpumask[c] = True
        params.strict_cpu = bool(strict)
        if cpus and hasattr(os, "sched_setaffinity"):
            # worker 0's CPUs as ggml computes them: the whole mask, or its first CPU when strict
            try:
                os.sched_setaffinity(0, cpus[:1] if strict else cpus)
            except OSError as exc:
                # ggml would only warn and run anywhere: a result that says 0x.. but was not is worse
                raise RunnerFailure("engine", "cpu_mask %s cannot pin a thread here (%s): it names no CPU this "
                                    "process may run on, which are %s" % (cpu_mask, exc.strerror or exc,
                                                                           sorted(os.sched_getaffinity(0))))
        self.free()
        pool = cpu.ggml_threadpool_new(ctypes.byref(params))
        if not pool:
            return False
        self._cpu, self._pool = cpu, pool
        L._lib.llama_attach_threadpool(ctx, pool, None)
        return True

    @property
    def attached(self) -> bool:
        return bool(self._pool)

    def free(self) -> None:
        if self._pool:
            self._cpu.ggml_threadpool_free(self._pool)
        self._pool = None
