"""llama.cpp in-process through llama-cpp-python's ctypes layer, timed the way llama-bench times.

Only the low-level ctypes module is used: the high-level `Llama` class copies
logits and samples on every token, which costs several percent of tg speed,
and importing it pulls numpy and jinja2 into the runner's RSS.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import random
import re
import sys
import time
import types

from ..protocol import RunnerFailure
from . import ggml_devices as devices
from . import llama_settings as llama
from .base import Engine, Measurement
from .declaration import THREADS, EngineDeclaration, Option
from .ggml_threadpool import Threadpool
from .hostinfo import cpu_model_name, physical_cores
from .llama_settings import FLASH_ATTN, KV_CACHE_TYPES

DECLARATION = EngineDeclaration(
    name="llama.cpp",
    doc="llama.cpp in-process, through llama-cpp-python",
    options=(THREADS,
             Option("n_ctx", "int", 0, "context size; 0: as large as each test needs", at_least=0),
             llama.N_BATCH, llama.N_UBATCH, llama.TYPE_K, llama.TYPE_V, llama.FLASH_ATTN_OPTION, llama.N_GPU_LAYERS,
             Option("use_mmap", "bool", True, "map the model file instead of reading it"),
             llama.REPACK),
    test_kinds=("pp", "tg", "pp+tg"),
    facts=("n_ctx", "n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_gpu_layers", "use_mmap", "repack"),
    compare_keys=llama.COMPARE_KEYS,
    row_fields=llama.row_fields,
)

# llama_load_mode: AUTO lets llama.cpp mmap where it can, which is llama-bench's default.
_LOAD_MODE = {True: -1, False: 0}
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4
# llama.cpp's own account of where its memory went, e.g. `CPU_REPACK model buffer size = 1.09 MiB`,
# `CUDA0 KV buffer size = 64.00 MiB`, `CUDA_Host compute buffer size = 12.01 MiB`: which buffer
# types were used (repacked, AMX, a GPU) and how much each holds
_BUFFER = re.compile(r"(\S+)\s+(model|KV|RS|compute|output) buffer size\s*=\s*([0-9.]+) MiB")


class _Batches(list):
    """llama_batch structs plus the token arrays they point into, which must outlive them."""

    def __init__(self, batches, storage):
        super().__init__(batches)
        self.storage = storage


def _low_level():
    """Import llama_cpp.llama_cpp without running the package __init__ (see module docstring)."""
    if "llama_cpp" not in sys.modules:
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("llama-cpp-python is not installed")
        package = types.ModuleType("llama_cpp")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["llama_cpp"] = package
    return importlib.import_module("llama_cpp.llama_cpp")


def _package_version():
    try:
        from importlib.metadata import version
        return version("llama_cpp_python")
    except Exception:
        return "unknown"


class LlamaCppEngine(Engine):
    declaration = DECLARATION

    @staticmethod
    def missing(options=None):
        if importlib.util.find_spec("llama_cpp") is None:
            return ("llama-cpp-python is not installed (on the controller: edgebench install-engine; "
                    "on a device: pip install llama-cpp-python)")
        return None

    def __init__(self):
        self.L = None
        self.model = None
        self.ctx = None
        self.options = {}
        self._log_cb = None
        self._depth_state = None
        self.model_buffers = {}
        self.context_buffers = {}
        self.threadpool = Threadpool()

    # -- loading -------------------------------------------------------------------------------------

    def open(self, model_path, options):
        try:
            L = self.L = _low_level()
        except OSError as exc:  # the shared library failed to load
            raise RunnerFailure("engine-missing", "libllama could not be loaded: %s" % exc)
        self._quiet_logs()
        L.llama_backend_init()
        self.options = dict(options)
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = int(options.get("n_gpu_layers", 0))
        mparams.load_mode = _LOAD_MODE[bool(options.get("use_mmap", True))]
        mparams.use_extra_bufts = bool(options.get("repack", True))
        self.model = L.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            # its reason is on stderr, which the controller reads and adds to this message
            raise RunnerFailure("model-file", "llama.cpp could not load %s" % model_path)
        vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.bos = L.llama_vocab_bos(vocab) if L.llama_vocab_get_add_bos(vocab) else None
        self.n_threads = int(options.get("threads") or physical_cores())
        desc = ctypes.create_string_buffer(256)
        L.llama_model_desc(self.model, desc, ctypes.sizeof(desc))
        return {
            "build_commit": "unknown",
            "build_number": 0,
            "engine_version": "llama-cpp-python " + _package_version(),
            "cpu_info": cpu_model_name(),
            "gpu_info": devices.gpu_info(),
            "backends": devices.backends(),
            "gpu_memory_mib": devices.gpu_memory_mib(),
            "model_type": desc.value.decode(errors="replace"),
            "model_size": int(L.llama_model_size(self.model)),
            "model_n_params": int(L.llama_model_n_params(self.model)),
            "n_threads": self.n_threads,
            "system_info": L.llama_print_system_info().decode(errors="replace").strip(),
            "repack": bool(mparams.use_extra_bufts),
            "model_buffers_mib": dict(self.model_buffers),
        }

    def _quiet_logs(self):
        """Keep llama.cpp's warnings and errors on stderr (they explain failures); drop the rest."""
        L = self.L

        def forward(level, text, _user):
            if not text:
                return
            line = text.decode(errors="replace")
            if level in (_GGML_LOG_WARN, _GGML_LOG_ERROR):
                sys.stderr.write(line)
            else:
                found = _BUFFER.search(line)
                if found:
                    buft, kind, mib = found.group(1), found.group(2), float(found.group(3))
                    if kind == "model":
                        self.model_buffers[buft] = mib
                    else:
                        self.context_buffers["%s %s" % (buft, kind)] = mib

        self._log_cb = L.llama_log_callback(forward)  # kept alive: C holds the pointer
        L.llama_log_set(self._log_cb, ctypes.c_void_p(0))

    def _new_context(self, test):
        L = self.L
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        self.context_buffers.clear()
        opts = self.options
        cparams = L.llama_context_default_params()
        # one extra position: a pp-only test still decodes its first token to time TTFT
        needed = test.n_depth + test.n_prompt + max(test.n_gen, 1)
        cparams.n_ctx = max(int(opts.get("n_ctx") or 0), needed)
        cparams.n_batch = int(opts.get("n_batch", 2048))
        cparams.n_ubatch = int(opts.get("n_ubatch", 512))
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.type_k = KV_CACHE_TYPES[opts.get("type_k", "f16")]
        cparams.type_v = KV_CACHE_TYPES[opts.get("type_v", "f16")]
        cparams.flash_attn_type = FLASH_ATTN[opts.get("flash_attn", "auto")]
        cparams.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RunnerFailure("engine", "llama.cpp could not create a context of %d tokens "
                                "(out of memory?)" % cparams.n_ctx)
        self.threadpool.attach(L, self.ctx, self.n_threads)
        self.n_batch = cparams.n_batch
        self.n_ctx = cparams.n_ctx
        self._depth_state = None

    # -- the llama-bench method ----------------------------------------------------------------------

    def _random_tokens(self, n):
        tokens = (ctypes.c_int32 * max(n, 1))()
        for i in range(n):
            tokens[i] = random.randrange(self.n_vocab)
        return tokens

    def _prompt_batches(self, n_prompt):
        """Batches of random tokens built before the clock starts, BOS first as llama-bench does."""
        L = self.L
        batches, keep, done = [], [], 0
        while done < n_prompt:
            n = min(n_prompt - done, self.n_batch)
            tokens = self._random_tokens(n)
            if done == 0 and self.bos is not None:
                tokens[0] = self.bos
            keep.append(tokens)
            batches.append(L.llama_batch_get_one(tokens, n))
            done += n
        return _Batches(batches, keep)

    def _gen_batches(self, n_gen):
        """One single-token batch per generated token, pointing into one token array."""
        L = self.L
        tokens = self._random_tokens(n_gen)
        if self.bos is not None and n_gen:
            tokens[0] = self.bos
        base = ctypes.addressof(tokens)
        size = ctypes.sizeof(ctypes.c_int32)
        ptr = ctypes.POINTER(ctypes.c_int32)
        batches = [L.llama_batch_get_one(ctypes.cast(base + i * size, ptr), 1) for i in range(n_gen)]
        return _Batches(batches, tokens)

    def _decode_all(self, batches, sync_each):
        decode, sync, ctx = self.L.llama_decode, self.L.llama_synchronize, self.ctx
        for batch in batches:
            rc = decode(ctx, batch)
            if rc != 0:
                raise RunnerFailure("engine", "llama_decode returned %d (context full or out of memory)" % rc)
            if sync_each:
                sync(ctx)
        sync(ctx)

    def _clear(self):
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), False)

    def _fill_depth(self, n_depth):
        """Fill the context to n_depth untimed; the state is cached so later reps restore it."""
        L = self.L
        if self._depth_state is not None:
            buf = self._depth_state
            if L.llama_state_seq_set_data(self.ctx, buf, len(buf), 0):
                return
        self._decode_all(self._prompt_batches(n_depth), sync_each=False)
        size = L.llama_state_seq_get_size(self.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        L.llama_state_seq_get_data(self.ctx, buf, size, 0)
        self._depth_state = buf

    def measure(self, test, repetitions, warmup, mark):
        self._new_context(test)
        for _ in range(warmup):
            if test.n_prompt:
                self._decode_all(self._prompt_batches(test.n_prompt), sync_each=False)
            if test.n_gen:
                self._decode_all(self._gen_batches(1), sync_each=True)
        clock = time.perf_counter_ns
        for rep in range(repetitions):
            self._clear()
            if test.n_depth:
                self._fill_depth(test.n_depth)
            prompt = self._prompt_batches(test.n_prompt)
            # a pp-only test decodes one extra token after the clock stops, for TTFT
            gen = self._gen_batches(test.n_gen or (1 if test.n_prompt else 0))
            first, rest = gen[:1], gen[1:test.n_gen]
            mark()
            t0 = time.monotonic()
            start = clock()
            if prompt:
                self._decode_all(prompt, sync_each=False)
            after_prompt = clock()
            if first:
                self._decode_all(first, sync_each=True)
            first_token = clock()
            if rest:
                self._decode_all(rest, sync_each=True)
            end = clock() if test.n_gen else after_prompt
            t1 = time.monotonic()
            mark()
            ttft = first_token - start if (test.n_prompt and first) else None
            yield Measurement(rep=rep, t_ns=end - start, ttft_ns=ttft, t0=t0, t1=t1)

    def late_info(self):
        # the last context's buffers (KV, recurrent state, compute, output), per buffer type
        return {"context_buffers_mib": dict(self.context_buffers)} if self.context_buffers else {}

    def close(self):
        if self.L is None:
            return
        if self.ctx:
            self.L.llama_free(self.ctx)
            self.ctx = None
        self.threadpool.free()
        if self.model:
            self.L.llama_model_free(self.model)
            self.model = None


ENGINE = LlamaCppEngine
