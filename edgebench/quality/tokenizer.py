"""Whether a quant and its reference share a tokenizer: KLD compares distributions over the same tokens,
so models whose tokenizers differ cannot be compared by it. Read with vocab_only (no weights)."""

from __future__ import annotations

from pathlib import Path

from edgebench.models.synth.engine_log import engine_log
from edgebench.runner.engines.llama_cpp_engine import _low_level, tokenize_with

# tokens a tokenizer difference shows in, when the user gives no text of their own
PROBE_TEXT = ("The quick brown fox jumps over the lazy dog. 1234567890 — naïve café, Größe, 東京, "
              "def f(x): return x ** 2\n\t<|im_start|>")


def vocabulary(path: str, text: bytes) -> tuple[int, int, list[int]]:
    """(vocabulary type, n_vocab, tokens of text) of a GGUF model, its weights not loaded. The type
    (SPM, BPE, ...) counts too: two tokenizers can agree on a short probe and part on other text."""
    L = _low_level()
    L.llama_backend_init()
    params = L.llama_model_default_params()
    params.vocab_only = True
    model = L.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise ValueError(f"llama.cpp could not read the vocabulary of {path}")
    try:
        vocab = L.llama_model_get_vocab(model)
        return L.llama_vocab_type(vocab), L.llama_vocab_n_tokens(vocab), tokenize_with(L, vocab, text)
    finally:
        L.llama_model_free(model)


def same_tokenizer(path: str, reference_path: str, text: bytes | None = None) -> bool:
    probe = text if text else PROBE_TEXT.encode()
    # llama.cpp's loader log goes to a file: the controller's terminal shows progress, not a model dump
    with engine_log(f"tokenizer-{Path(path).name}"):
        return vocabulary(path, probe) == vocabulary(reference_path, probe)
