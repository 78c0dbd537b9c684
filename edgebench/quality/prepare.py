"""What a run's quality tests need before any device runs them: the reference built (or found in the
cache) and the checks that fail a cell in one sentence rather than on the device."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.file_hashes import sha256_file
from edgebench.models.resolve import LocalModel, file_model, resolve_model
from edgebench.models.synth.engine_log import engine_log
from edgebench.quality import reference as ref
from edgebench.quality.text import DEFAULT_SEED, sampled_tokens
from edgebench.quality.tokenizer import same_tokenizer
from edgebench.runner.scoring.tokens_file import TokenStream, encode_tokens


class QualityError(EdgebenchError):
    kind = "quality"


@dataclass(frozen=True)
class PreparedQuality:
    """The files a quality job sends: the compact reference (None without a `reference:`) and the text."""

    reference: LocalModel | None
    text: LocalModel | None
    reference_model: LocalModel | None


def _tokens(engine, options) -> tuple[list[int], str, int]:
    """(tokens, what they are for the cache key, n_chunk) over which the reference is computed."""
    n_ctx = options.n_ctx
    if options.text:
        data = Path(options.text).read_bytes()
        tokens = engine.tokenize(data)
        if len(tokens) < 2 * n_ctx:
            raise QualityError(f"quality.text {options.text} is {len(tokens)} tokens; n_ctx {n_ctx} needs "
                               f"at least {2 * n_ctx} (as llama-perplexity)")
        n_chunk = min(options.chunks, len(tokens) // n_ctx)
        return tokens, "text:" + hashlib.sha256(data).hexdigest(), n_chunk
    return sampled_tokens(engine, n_ctx, options.chunks), f"sampled:{DEFAULT_SEED}", options.chunks


def build_reference(model: LocalModel, options, threads: int | None = None) -> Path:
    """The compact reference for the reference model, from the cache or computed here (in-process llama.cpp)."""
    from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine
    tokens_key = f"text:{sha256_file(Path(options.text))}" if options.text else f"sampled:{DEFAULT_SEED}"
    # the chunk count of a text is known only after tokenizing it; the key holds what was asked
    key = ref.reference_key(model.sha256, tokens_key, options.n_ctx, options.chunks)
    cached = ref.reference_dir() / f"{key}.ebqref"
    if cached.is_file():
        return cached
    # llama.cpp's loader log goes to a file, as the quantizer's does, not through the progress display
    with engine_log(f"quality-reference-{model.name}"):
        engine = LlamaCppEngine()
        engine.open(str(model.path), {"threads": threads or 0, "n_batch": max(2048, options.n_ctx)})
        try:
            tokens, _, n_chunk = _tokens(engine, options)
            reference = ref.compute_reference(engine, tokens, options.n_ctx, n_chunk)
        finally:
            engine.close()
    return ref.write_cached(key, reference)


def build_own_samples(model: LocalModel, options, threads: int | None = None) -> Path:
    """`ppl`'s text when the profile has neither a text nor a reference: tokens sampled from the model under
    test itself, from the cache or sampled here (in-process llama.cpp), the same for every device."""
    from edgebench.runner.engines.llama_cpp_engine import LlamaCppEngine
    key = ref.reference_key(model.sha256, f"own-samples:{DEFAULT_SEED}", options.n_ctx, options.chunks)
    cached = ref.reference_dir() / f"{key}.ebqtok"
    if cached.is_file():
        return cached
    with engine_log(f"quality-samples-{model.name}"):
        engine = LlamaCppEngine()
        engine.open(str(model.path), {"threads": threads or 0})
        try:
            tokens = sampled_tokens(engine, options.n_ctx, options.chunks)
        finally:
            engine.close()
    return ref.write_cached_bytes(cached, encode_tokens(TokenStream(options.n_ctx, options.chunks, tokens)))


class QualityFiles:
    """Per run: the reference built once (whichever device's worker asks first) and each model's
    tokenizer checked once against the reference's."""

    def __init__(self, options):
        self.options = options
        self._lock = threading.Lock()
        self._prepared: PreparedQuality | None = None
        self._same: dict[str, bool] = {}
        self._own_samples: dict[str, LocalModel] = {}

    def prepared(self) -> PreparedQuality:
        with self._lock:
            if self._prepared is None:
                self._prepared = self._prepare()
            return self._prepared

    def _prepare(self) -> PreparedQuality:
        options = self.options
        text = file_model(Path(options.text), "quality text") if options.text else None
        if options.reference is None:
            return PreparedQuality(reference=None, text=text, reference_model=None)
        model = resolve_model(options.reference)
        try:
            path = build_reference(model, options)
        except (OSError, ValueError, RuntimeError) as exc:
            raise QualityError(f"the quality reference {options.reference.name} could not be computed: {exc}") \
                from None
        return PreparedQuality(reference=file_model(path, "quality reference"), text=text, reference_model=model)

    def own_samples(self, model: LocalModel) -> LocalModel:
        """The tokens sampled from `model` that its `ppl` scores when the profile gives no text or reference."""
        with self._lock:
            if model.sha256 not in self._own_samples:
                try:
                    path = build_own_samples(model, self.options)
                except (OSError, ValueError, RuntimeError) as exc:
                    raise QualityError(f"tokens could not be sampled from {model.name} for its ppl test: {exc}") \
                        from None
                self._own_samples[model.sha256] = file_model(path, "quality tokens")
            return self._own_samples[model.sha256]

    def check_tokenizer(self, model: LocalModel) -> None:
        """Fail in one sentence when the model's tokenizer is not the reference's."""
        prepared = self.prepared()
        if prepared.reference_model is None:
            return
        with self._lock:
            if model.sha256 not in self._same:
                text = Path(self.options.text).read_bytes() if self.options.text else None
                self._same[model.sha256] = same_tokenizer(str(model.path), str(prepared.reference_model.path), text)
        if not self._same[model.sha256]:
            raise QualityError(f"KLD cannot compare {model.name} with the reference "
                               f"{prepared.reference_model.name}: their tokenizers differ")
