"""Quantize a GGUF file with llama.cpp's own quantizer (through llama-cpp-python)."""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Callable

from edgebench.errors import SynthError
from edgebench.models.synth.engine_log import engine_log, log_tail
from edgebench.outputs import replacing

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

# llama.cpp's quantizer logs `[  12/  55] blk.0.ffn_up.weight - ... size = ...` as each tensor is done
_TENSOR_DONE = re.compile(r"^\[\s*(\d+)/\s*(\d+)\]")

#: progress(done, total, unit): the quantizer reports tensors done of the model's tensors
Progress = Callable[..., None]


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise SynthError(f"quantizing needs llama-cpp-python, which is not installed ({exc}); "
                         f"install it with: {_INSTALL_HINT}") from exc
    return llama_cpp


def quantize(src: str | os.PathLike[str], dst: str | os.PathLike[str], quant: str,
             n_threads: int | None = None, progress: Progress | None = None) -> Path:
    """Quantize GGUF `src` to `quant` (one of `FTYPES`), writing `dst` atomically; return `dst`.

    llama.cpp's log goes to a file under <cache>/logs/ (named in the error if it fails), and
    `progress(tensors_done, n_tensors, "tensors")` follows it tensor by tensor.
    """
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

    def tensor_done(line: str) -> None:
        found = _TENSOR_DONE.match(line)
        if found and progress is not None:
            progress(int(found.group(1)), int(found.group(2)), "tensors")
    with replacing(dst) as tmp:
        with engine_log(f"quantize-{dst.name}-{quant}", on_line=tensor_done) as log:
            rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp), ctypes.byref(params))
        if rc != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            tail = log_tail(log)
            raise SynthError(f"llama.cpp failed to quantize {src.name} to {quant} (code {rc}); its log is {log}"
                             + (f":\n{tail}" if tail else ""))
    return dst
