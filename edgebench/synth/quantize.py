"""Quantize a GGUF file with llama.cpp's own quantizer (through llama-cpp-python)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from edgebench.errors import SynthError

#: llama_ftype values (llama.h) for the quants a synthetic spec may ask for.
FTYPES: dict[str, int] = {
    "F16": 1,      # LLAMA_FTYPE_MOSTLY_F16
    "Q8_0": 7,     # LLAMA_FTYPE_MOSTLY_Q8_0
    "Q6_K": 18,    # LLAMA_FTYPE_MOSTLY_Q6_K
    "Q5_K_M": 17,  # LLAMA_FTYPE_MOSTLY_Q5_K_M
    "Q4_K_M": 15,  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    "Q3_K_S": 11,  # LLAMA_FTYPE_MOSTLY_Q3_K_S
}

_INSTALL_HINT = "edgebench install-engine"

# fd 2 is process-wide: quantizations in one process take turns (each already uses every core)
_STDERR_LOCK = threading.Lock()


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise SynthError(f"quantizing needs llama-cpp-python, which is not installed ({exc}); "
                         f"install it with: {_INSTALL_HINT}") from exc
    return llama_cpp


def quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], quant: str,
             n_threads: int | None = None) -> Path:
    """Quantize GGUF `src` to `quant` (one of `FTYPES`), writing `dst` atomically; return `dst`."""
    src, dst = Path(src), Path(dst)
    quant = quant.upper()
    if quant not in FTYPES:
        raise SynthError(f"cannot quantize to {quant!r}; choose one of {', '.join(FTYPES)}")
    if not src.is_file():
        raise SynthError(f"cannot quantize {src}: no such file")
    llama_cpp = _import_llama_cpp()

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[quant]
    params.nthread = int(n_threads) if n_threads else 0  # <= 0: llama.cpp uses all cores
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        with _captured_stderr() as log:
            rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp),
                                                ctypes.byref(params))
        if rc != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = "\n".join(log.text().strip().splitlines()[-8:])
            raise SynthError(f"llama.cpp failed to quantize {src.name} to {quant} (code {rc})"
                             + (f":\n{tail}" if tail else ""))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


class _Log:
    """What llama.cpp wrote to stderr; complete once the capturing block has exited."""

    def __init__(self) -> None:
        self._text = ""

    def text(self) -> str:
        return self._text


@contextlib.contextmanager
def _captured_stderr():
    """Send fd 2 (where llama.cpp logs) to a temporary file for the duration; yield its reader.

    llama.cpp prints a line per tensor while quantizing; this keeps the console clean and keeps
    the log so a failure can be reported with its cause. Holds `_STDERR_LOCK` throughout, so two
    threads never juggle fd 2 at once.
    """
    with _STDERR_LOCK:
        with _redirect_fd2() as result:
            yield result


@contextlib.contextmanager
def _redirect_fd2():
    result = _Log()
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreter): nothing to capture
        yield result
        return
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield result
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            result._text = log.read()[-65536:].decode("utf-8", "replace")
