"""onnxruntime: generic models at a batch size, and decoder LLMs that carry a KV cache.

A decoder is recognised by its signature (the optimum / ORT-GenAI layout):
`input_ids`, optional `attention_mask` and `position_ids`, `past_key_values.N.key|value`
inputs and `present.N.key|value` outputs. It is measured as llama-bench measures a
GGUF model: random token ids, a prompt in one pass, then single-token steps that feed
each step's `present` back as the next step's `past`, with depth filled untimed first.
Anything else is a generic model: every input gets random data of its type and shape,
the first dynamic dimension is the batch, and other dynamic dimensions come from the
profile's `engine.dims`.

onnxruntime and numpy are imported only when a job names this engine.
"""

from __future__ import annotations

import time

from ..protocol import RunnerFailure
from .base import Engine, Measurement
from .declaration import THREADS, EngineDeclaration, Option

OPTIMIZATION = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL"}
PAST, PRESENT = "past_key_values", "present"

DECLARATION = EngineDeclaration(
    name="onnxruntime",
    doc="ONNX models through onnxruntime: decoder LLMs (pp/tg) and generic models (b<N>)",
    options=(THREADS,
             Option("providers", "texts", ("CPUExecutionProvider",), "execution providers, in order"),
             Option("inter_op_threads", "int", 0, "inter-op threads; 0: onnxruntime's default", at_least=0),
             Option("graph_optimization", "choice", "all", "graph optimisation level", choices=tuple(OPTIMIZATION)),
             Option("dims", "sizes", {}, "sizes of named dynamic dimensions besides the batch")),
    test_kinds=("pp", "tg", "pp+tg", "b"),
    facts=("providers", "inter_op_threads", "graph_optimization", "dims"),
    compare_keys=("providers", "graph_optimization", "inter_op_threads", "dims"),
)


def _first_line(exc) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]


class OnnxEngine(Engine):
    declaration = DECLARATION

    @staticmethod
    def missing(options=None):
        try:
            import numpy  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return "onnxruntime is not installed here (pip install onnxruntime): %s" % exc
        return None

    def open(self, model_path, options):
        import numpy as np
        import onnxruntime as ort

        self.np, self.options = np, dict(options)
        self.rng = np.random.default_rng(0)
        session_options = ort.SessionOptions()
        if options.get("threads"):
            session_options.intra_op_num_threads = int(options["threads"])
        if options.get("inter_op_threads"):
            session_options.inter_op_num_threads = int(options["inter_op_threads"])
        level = options.get("graph_optimization") or "all"
        if level not in OPTIMIZATION:
            raise RunnerFailure("job", "graph_optimization must be one of %s" % ", ".join(OPTIMIZATION))
        session_options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPTIMIZATION[level])
        providers = list(options.get("providers") or ["CPUExecutionProvider"])
        available = ort.get_available_providers()
        lacking = [p for p in providers if p not in available]
        if lacking:
            raise RunnerFailure("engine-missing", "execution provider %s is not available on this device; it has: %s"
                                % (", ".join(lacking), ", ".join(available)))
        try:
            self.session = ort.InferenceSession(model_path, sess_options=session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own pybind types for every load failure
            message = _first_line(exc)
            hint = " (an external-data file it names is missing?)" if "external" in message.lower() or \
                "no such file" in message.lower() else ""
            raise RunnerFailure("model-file", "onnxruntime cannot load %s%s: %s" % (model_path, hint, message))
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.decoder = "input_ids" in self.inputs and any(n.startswith(PAST) for n in self.inputs)
        return {"engine_version": "onnxruntime " + ort.__version__,
                "model_type": "onnx decoder" if self.decoder else "onnx",
                "backends": ",".join(providers),
                "n_threads": int(options.get("threads") or 0) or None}

    # -- inputs ------------------------------------------------------------------------------------

    def _dims(self, node, batch):
        dims, seen_dynamic = [], False
        named = self.options.get("dims") or {}
        for dim in node.shape:
            if isinstance(dim, int):
                dims.append(dim)
            elif isinstance(dim, str) and dim in named:
                dims.append(int(named[dim]))
            elif not seen_dynamic:
                dims.append(batch)  # the first dynamic dimension is the batch
            else:
                raise RunnerFailure("job", "input %s has a dynamic dimension %r: set engine.dims.%s in the profile"
                                    % (node.name, dim, dim))
            seen_dynamic = seen_dynamic or not isinstance(dim, int)
        return dims

    def _random(self, node, dims):
        np = self.np
        kind = node.type  # e.g. "tensor(float)", "tensor(int64)"
        if "float16" in kind:
            return self.rng.random(dims, dtype=np.float32).astype(np.float16)
        if "double" in kind:
            return self.rng.random(dims)
        if "float" in kind:
            return self.rng.random(dims, dtype=np.float32)
        if "bool" in kind:
            return self.rng.random(dims) < 0.5
        if "int" in kind:
            # small ids: a Gather into any table of at least two rows stays in range
            return self.rng.integers(0, 2, dims).astype(np.int32 if "int32" in kind else np.int64)
        raise RunnerFailure("job", "input %s has type %s, which edgebench cannot fill" % (node.name, kind))

    def _generic_feeds(self, batch):
        return {name: self._random(node, self._dims(node, batch)) for name, node in self.inputs.items()}

    # -- decoder -----------------------------------------------------------------------------------

    def _vocab(self):
        logits = next((o for o in self.session.get_outputs() if o.name == "logits"), None)
        last = logits.shape[-1] if logits is not None and logits.shape else None
        return last if isinstance(last, int) else int((self.options.get("dims") or {}).get("vocab", 2))

    def _size(self, dim):
        """A static dimension, or a named one from the profile's `engine.dims` (1 when not named)."""
        return dim if isinstance(dim, int) else int((self.options.get("dims") or {}).get(dim, 1))

    def _empty_past(self):
        np, past = self.np, {}
        for name, node in self.inputs.items():
            if name.startswith(PAST):
                # [batch, heads, past, head_dim]: one sequence, nothing cached yet
                batch, heads, _past, head_dim = node.shape
                dims = [batch if isinstance(batch, int) else 1, self._size(heads), 0, self._size(head_dim)]
                past[name] = np.zeros(dims, dtype=np.float16 if "float16" in node.type else np.float32)
        return past

    def _step(self, n_tokens, past, position):
        """One decoder pass over n_tokens new random tokens; returns the new past (from `present`)."""
        np = self.np
        feeds = dict(past)
        feeds["input_ids"] = self.rng.integers(0, self.vocab, (1, n_tokens)).astype(
            np.int32 if "int32" in self.inputs["input_ids"].type else np.int64)
        if "attention_mask" in self.inputs:
            feeds["attention_mask"] = np.ones((1, position + n_tokens), dtype=feeds["input_ids"].dtype)
        if "position_ids" in self.inputs:
            feeds["position_ids"] = np.arange(position, position + n_tokens, dtype=np.int64)[None, :]
        results = self.session.run(None, feeds)
        by_name = dict(zip(self.outputs, results))
        return {name: by_name[PRESENT + name[len(PAST):]] for name in past}

    def _decode(self, test, start_past, start_position, clock):
        """Time one repetition: (start, end, when the first token could be sampled)."""
        begin = clock()
        past, position = start_past, start_position
        if test.n_prompt:
            past = self._step(test.n_prompt, past, position)
            position += test.n_prompt
        # the first token is sampled from the prompt's last logits: TTFT ends here, as in llama.cpp's engine
        first = clock()
        for _ in range(test.n_gen):
            past = self._step(1, past, position)
            position += 1
        end = clock()
        return begin, end, first

    # -- measuring ---------------------------------------------------------------------------------

    def measure(self, test, repetitions, warmup, mark):
        if self.decoder:
            if test.batch:
                raise RunnerFailure("job", "this model is a decoder LLM: use pp/tg tests, not %s" % test.name)
            for m in self._measure_decoder(test, repetitions, warmup, mark):
                yield m
            return
        if not test.batch:
            raise RunnerFailure("job", "this model is not a decoder LLM with past_key_values: use b<N> tests "
                                "(one forward pass at batch size N), not %s" % test.name)
        feeds = self._generic_feeds(test.batch)
        run = self.session.run
        for _ in range(warmup):
            run(None, feeds)
        for rep in range(repetitions):
            mark()
            t0 = time.monotonic()
            start = time.perf_counter_ns()
            run(None, feeds)
            end = time.perf_counter_ns()
            mark()
            yield Measurement(rep=rep, t_ns=end - start, ttft_ns=None, t0=t0, t1=time.monotonic())

    def _measure_decoder(self, test, repetitions, warmup, mark):
        self.vocab = self._vocab()
        past = self._empty_past()
        if test.n_depth:
            past = self._step(test.n_depth, past, 0)  # untimed, kept and fed to every repetition
        clock = time.perf_counter_ns
        for _ in range(warmup):
            self._decode(test, past, test.n_depth, clock)
        for rep in range(repetitions):
            mark()
            t0 = time.monotonic()
            begin, end, first = self._decode(test, past, test.n_depth, clock)
            mark()
            yield Measurement(rep=rep, t_ns=end - begin, ttft_ns=(first - begin) if test.n_prompt else None,
                              t0=t0, t1=time.monotonic())


ENGINE = OnnxEngine
