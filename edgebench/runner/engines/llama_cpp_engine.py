"""llama.cpp in-process through llama-cpp-python's ctypes layer, timed the way llama-bench times.

Only the low-level ctypes module is used: the high-level `Llama` class copies
logits and samples on every token, which costs several percent of tg speed,
and importing it pulls numpy and jinja2 into the runner's RSS.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import random
import re
import sys
import time
import types

from ..protocol import RunnerFailure
from ..scoring.measure import measure_quality
from . import ggml_devices as devices
from . import installed
from . import llama_settings as llama
from .base import Engine, Measurement
from .declaration import THREADS, EngineDeclaration, Option
from .ggml_threadpool import Threadpool
from .gpu_memory import DeviceMemoryLog
from .hostinfo import cpu_model_name, physical_cores
from .llama_scoring import ChunkDecoder, sequences_per_batch
from .llama_settings import FLASH_ATTN, KV_CACHE_TYPES

DECLARATION = EngineDeclaration(
    name="llama.cpp",
    doc="llama.cpp in-process, through llama-cpp-python",
    options=(THREADS,
             Option("n_ctx", "int", 0, "context size; 0: n_prompt + n_gen + n_depth, as llama-bench", at_least=0),
             llama.N_BATCH, llama.N_UBATCH, llama.TYPE_K, llama.TYPE_V, llama.FLASH_ATTN_OPTION, llama.N_GPU_LAYERS,
             Option("use_mmap", "bool", True, "map the model file instead of reading it"),
             llama.REPACK, llama.N_CPU_MOE, llama.SWA_FULL) + llama.CPU_OPTIONS,
    test_kinds=("pp", "tg", "pp+tg", "ppl", "kld"),
    facts=("n_ctx", "n_batch", "n_ubatch", "type_k", "type_v", "flash_attn", "n_gpu_layers", "use_mmap", "repack",
           "n_cpu_moe", "swa_full") + llama.CPU_FACTS,
    compare_keys=llama.COMPARE_KEYS,
    row_fields=llama.row_fields,
)

# llama_load_mode: AUTO lets llama.cpp mmap where it can, which is llama-bench's default.
_LOAD_MODE = {True: -1, False: 0}
_GGML_LOG_WARN, _GGML_LOG_ERROR = 3, 4
# llama.cpp's own account of where the weights went, e.g. `CPU_REPACK model buffer size = 1.09 MiB`:
# which buffer types were used (repacked, AMX, a GPU) and how much each holds
_MODEL_BUFFER = re.compile(r"(\S+) model buffer size\s*=\s*([0-9.]+) MiB")
# its account of each context's memory, per buffer type: `CPU KV buffer size = 8.00 MiB`, `CPU RS ...`,
# `CPU  output buffer size`, `CPU compute buffer size`; and each KV cache's cells (`( 512 cells,`), which
# show the context and a sliding-window cache as llama.cpp sized them
_CONTEXT_BUFFER = re.compile(r"(\S+)\s+(KV|RS|output|compute) buffer size\s*=\s*([0-9.]+) MiB")
_KV_CELLS = re.compile(r"llama_kv_cache: size = .*?\(\s*(\d+) cells,\s*(\d+) layers")
# a tensor that n_cpu_moe (a buffer-type override) placed: llama.cpp says so at debug level
_OVERRIDDEN = re.compile(r"tensor (\S+) .*buffer type overridden to (\S+)")
# llama-bench's -ncmoe pattern (common.h llm_ffn_block_regex with LLM_FFN_EXPS_REGEX)
_EXPERTS_OF_LAYER = "blk\\.%d\\.ffn_(up|down|gate|gate_up)_(ch|)exps"


class _BufferOverride(ctypes.Structure):
    """llama.h's llama_model_tensor_buft_override, which llama-cpp-python leaves undeclared."""
    _fields_ = [("pattern", ctypes.c_char_p), ("buft", ctypes.c_void_p)]


class _Batches(list):
    """llama_batch structs plus the token arrays they point into, which must outlive them."""

    def __init__(self, batches, storage):
        super().__init__(batches)
        self.storage = storage


# True in the controller's process (and a test's), where this package is edgebench.runner; False in the
# runner's own process, where the zipapp holds it under another name
_IN_CONTROLLER = __name__.split(".")[0] == "edgebench"


def _low_level():
    """llama_cpp.llama_cpp. In the runner's process, without running the package __init__ (see module
    docstring): a bare `llama_cpp` package stands in for it, which nothing else there imports. In the
    controller's process the whole package is imported: the quantizer imports it too, and a stub under
    its name would hide everything the __init__ exports (llama_model_quantize_default_params, ...)."""
    if _IN_CONTROLLER:
        return importlib.import_module("llama_cpp.llama_cpp")
    if "llama_cpp" not in sys.modules:
        _use_installed_bindings()
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("llama-cpp-python is not installed")
        package = types.ModuleType("llama_cpp")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["llama_cpp"] = package
    return importlib.import_module("llama_cpp.llama_cpp")


def _use_installed_bindings():
    """Put the bindings `install-engine -d` pushed (installed.py) first on the path, with their build's
    libraries; a Python without typing_extensions gets the one name the bindings take from it."""
    python, lib = installed.bindings()
    if python is None:
        return
    sys.path.insert(0, python)
    os.environ["LLAMA_CPP_LIB_PATH"] = lib
    if importlib.util.find_spec("typing_extensions") is None:
        import typing
        shim = types.ModuleType("typing_extensions")
        shim.TypeAlias = getattr(typing, "TypeAlias", object)  # Python 3.10+; only an annotation before
        sys.modules["typing_extensions"] = shim


def _build_of(L) -> dict:
    """The row's build fields: the installed build's (install-engine -d) when its bindings are loaded."""
    python, _ = installed.bindings()
    if python and (getattr(L, "__file__", "") or "").startswith(python + os.sep):
        found = installed.manifest() or {}
        return {"build_commit": found.get("build_commit") or "unknown", "build_number": found.get("build_number") or 0,
                "engine_version": "llama-cpp-python %s (installed build)" % found.get("llama_cpp_python"),
                **installed.build_fields()}
    return {"build_commit": "unknown", "build_number": 0, "engine_version": "llama-cpp-python " + _package_version()}


def _package_version():
    try:
        from importlib.metadata import version
        return version("llama_cpp_python")
    except Exception:
        return "unknown"


def tokenize_with(L, vocab, text: bytes) -> list:
    """llama_tokenize with special tokens added, not parsed (as llama-perplexity's common_tokenize)."""
    capacity = len(text) + 16
    for _ in range(2):
        tokens = (ctypes.c_int32 * capacity)()
        n = L.llama_tokenize(vocab, text, len(text), tokens, capacity, True, False)
        if n >= 0:
            return list(tokens[:n])
        capacity = -n  # a byte-level tokenizer can need more tokens than the text has bytes
    raise RunnerFailure("quality", "the text could not be tokenized")


class LlamaCppEngine(Engine):
    declaration = DECLARATION

    @staticmethod
    def missing(options=None):
        python, why_not = installed.bindings()
        if python is None and importlib.util.find_spec("llama_cpp") is None:
            if why_not:  # an engine was installed, but only for llama-bench
                return "only the llama-bench engine is installed here: %s" % why_not
            return ("llama-cpp-python is not installed (on the controller: edgebench install-engine; "
                    "on a device: edgebench install-engine -d DEVICE)")
        return installed.unusable() if python else None

    def __init__(self):
        self.L = None
        self.model = None
        self.ctx = None
        self.options = {}
        self._log_cb = None
        self._depth_state = None
        self.model_buffers = {}
        self.context_buffers = {}
        self.kv_caches = []
        self.overridden = {}
        self._overrides = None
        self.threadpool = Threadpool()
        self.device_memory = DeviceMemoryLog()

    # -- loading -------------------------------------------------------------------------------------

    def open(self, model_path, options):
        self.device_memory.read_before()
        try:
            L = self.L = _low_level()
        except OSError as exc:  # the shared library failed to load
            raise RunnerFailure("engine-missing", "libllama could not be loaded: %s" % exc)
        self._quiet_logs()
        L.llama_backend_init()
        self.device_memory.read("start")
        self.options = dict(options)
        mparams = L.llama_model_default_params()
        mparams.n_gpu_layers = int(options.get("n_gpu_layers", 0))
        mparams.load_mode = _LOAD_MODE[bool(options.get("use_mmap", True))]
        mparams.use_extra_bufts = bool(options.get("repack", True))
        n_cpu_moe = int(options.get("n_cpu_moe") or 0)
        if n_cpu_moe:
            self._overrides = self._experts_on_cpu(n_cpu_moe)
            mparams.tensor_buft_overrides = ctypes.cast(self._overrides, ctypes.c_void_p)
        self.model = L.llama_model_load_from_file(model_path.encode(), mparams)
        if not self.model:
            # its reason is on stderr, which the controller reads and adds to this message
            raise RunnerFailure("model-file", "llama.cpp could not load %s" % model_path)
        self.device_memory.read("model")
        vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(vocab)
        self.bos = L.llama_vocab_bos(vocab) if L.llama_vocab_get_add_bos(vocab) else None
        self.n_threads = int(options.get("threads") or physical_cores())
        desc = ctypes.create_string_buffer(256)
        L.llama_model_desc(self.model, desc, ctypes.sizeof(desc))
        return {
            **_build_of(L),
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
            # tensors n_cpu_moe moved, per buffer type: {"CPU": 6} for 2 layers' up/gate/down experts
            "overridden_tensors": dict(self.overridden),
        }

    def _experts_on_cpu(self, n_layers):
        """The overrides llama-bench's `-ncmoe N` makes: layers 0..N-1's expert tensors in CPU memory.
        The array and its strings must outlive the model load, so the caller keeps them."""
        import glob
        import os
        base = os.path.dirname(self.L.__file__)
        libdir = os.environ.get("LLAMA_CPP_LIB_PATH") or os.path.join(base, "lib")
        found = sorted(glob.glob(os.path.join(libdir, "libggml-cpu.*"))) + sorted(glob.glob(
            os.path.join(libdir, "ggml-cpu*")))
        if not found:
            raise RunnerFailure("engine", "n_cpu_moe needs llama.cpp's CPU backend library (libggml-cpu) "
                                "beside libllama in %s, and it is not there" % libdir)
        ggml_cpu = ctypes.CDLL(found[0])
        ggml_cpu.ggml_backend_cpu_buffer_type.restype = ctypes.c_void_p
        cpu = ggml_cpu.ggml_backend_cpu_buffer_type()
        overrides = (_BufferOverride * (n_layers + 1))()
        for i in range(n_layers):
            overrides[i].pattern = (_EXPERTS_OF_LAYER % i).encode()
            overrides[i].buft = cpu
        return overrides

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
                self._account(line)

        self._log_cb = L.llama_log_callback(forward)  # kept alive: C holds the pointer
        L.llama_log_set(self._log_cb, ctypes.c_void_p(0))

    def _account(self, line):
        found = _OVERRIDDEN.search(line)
        if found:
            self.overridden[found.group(2)] = self.overridden.get(found.group(2), 0) + 1
            return
        found = _MODEL_BUFFER.search(line)
        if found:
            self.model_buffers[found.group(1)] = float(found.group(2))
            return
        found = _CONTEXT_BUFFER.search(line)
        if found:
            key = "%s %s" % (found.group(1), found.group(2))
            self.context_buffers[key] = round(self.context_buffers.get(key, 0.0) + float(found.group(3)), 2)
            return
        found = _KV_CELLS.search(line)
        if found:
            self.kv_caches.append({"cells": int(found.group(1)), "layers": int(found.group(2))})

    def late_info(self):
        """llama.cpp's own account of the last context it made (the memory a plan predicts), and each GPU
        device's memory at every stage (gpu_memory.py)."""
        info = {"device_memory": self.device_memory.summary()} if self.device_memory.readings else {}
        if self.ctx:
            info.update(context_buffers_mib=dict(self.context_buffers), kv_caches=list(self.kv_caches),
                        n_ctx=int(self.L.llama_n_ctx(self.ctx)))
        return info

    def _new_context(self, test, needed=None, n_seq=1):
        L = self.L
        if self.ctx:
            L.llama_free(self.ctx)
            self.ctx = None
        self.context_buffers.clear()
        opts = self.options
        cparams = L.llama_context_default_params()
        if needed is None:
            # llama-bench's context (to_llama_cparams), so both engines allocate the same memory
            needed = test.n_depth + test.n_prompt + test.n_gen
        cparams.n_ctx = max(int(opts.get("n_ctx") or 0), needed)
        cparams.swa_full = bool(opts.get("swa_full", False))
        # a quality context (n_seq chunks side by side) takes no larger batch than it holds, as llama-perplexity
        cparams.n_batch = int(opts.get("n_batch", 2048)) if test else min(int(opts.get("n_batch", 2048)), needed)
        cparams.n_seq_max = n_seq
        cparams.n_ubatch = int(opts.get("n_ubatch", 512))
        cparams.n_threads = cparams.n_threads_batch = self.n_threads
        cparams.type_k = KV_CACHE_TYPES[opts.get("type_k", "f16")]
        cparams.type_v = KV_CACHE_TYPES[opts.get("type_v", "f16")]
        cparams.flash_attn_type = FLASH_ATTN[opts.get("flash_attn", "auto")]
        cparams.no_perf = True
        self.context_buffers, self.kv_caches = {}, []
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RunnerFailure("engine", "llama.cpp could not create a context of %d tokens "
                                "(out of memory?)" % cparams.n_ctx)
        self.device_memory.read("context")
        self.threadpool.attach(L, self.ctx, self.n_threads, opts.get("cpu_mask") or "0x0",
                               bool(opts.get("cpu_strict")))
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
            gen = self._gen_batches(test.n_gen)
            mark()
            t0 = time.monotonic()
            start = clock()
            if prompt:
                self._decode_all(prompt, sync_each=False)
            # the first token is sampled from the prompt's last logits: TTFT ends here
            after_prompt = clock()
            if gen:
                self._decode_all(gen, sync_each=True)
            end = clock()
            t1 = time.monotonic()
            mark()
            ttft = after_prompt - start if test.n_prompt else None
            yield Measurement(rep=rep, t_ns=end - start, ttft_ns=ttft, t0=t0, t1=t1)
        self.device_memory.read("run")

    # -- quality (runner/scoring/) -------------------------------------------------------------------

    def measure_quality(self, job, test_kind, mark):
        found = measure_quality(self, job, test_kind, mark)
        self.device_memory.read("run")
        return found

    def tokenize(self, text: bytes):
        """The text in the model's own tokens, BOS first where the model adds one (as llama-perplexity)."""
        L = self.L
        vocab = L.llama_model_get_vocab(self.model)
        return tokenize_with(L, vocab, text)

    def chunk_decoder(self, n_ctx: int) -> ChunkDecoder:
        """A context as llama-perplexity makes one: n_seq chunks of n_ctx side by side."""
        n_seq = sequences_per_batch(int(self.options.get("n_batch", 2048)), n_ctx, self.n_vocab)
        self._new_context(None, needed=n_ctx * n_seq, n_seq=n_seq)
        return ChunkDecoder(self.L, self.ctx, self.n_vocab, self.n_batch, n_seq, self.bos)

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
        if self._log_cb is not None:
            # llama.cpp keeps the callback's address: back to its default before this one can be freed,
            # or the next log line of any llama.cpp user in this process calls freed memory
            self.L.llama_log_set(self.L.llama_log_callback(), ctypes.c_void_p(0))  # NULL: the default
            self._log_cb = None


ENGINE = LlamaCppEngine
