"""`edgebench quantize`: onnxruntime's dynamic int8 quantization, so a sweep can name fp32 and int8
variants of one model. Weights become int8; activations are quantized on the fly at run time."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

from edgebench.errors import EdgebenchError, ModelFileError
from edgebench.models.onnx_files import external_data_files, load_structure
from edgebench.outputs import replacing


def quantize_int8(source: Path, dest: Path) -> Path:
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise ModelFileError(f"model file not found: {source}")
    if dest.resolve() == source.resolve():
        raise EdgebenchError("the int8 model must go to a new file (-o), not over its source")
    load_structure(source)  # a clear error for a file that is not ONNX, before onnxruntime's
    extra = external_data_files(source)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EdgebenchError("quantizing needs onnxruntime: pip install 'edgebench[onnx]'") from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name and renamed whole; not with external data, whose file name
    # the model records as it is written
    with nullcontext(dest) if extra else replacing(dest) as partial:
        try:
            # its advice to pre-process first goes to the root logger; the result is the same without it
            logging.disable(logging.WARNING)
            quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8,
                             use_external_data_format=bool(extra))
        except Exception as exc:  # onnxruntime's quantizer raises plain exceptions of many kinds
            partial.unlink(missing_ok=True)
            raise ModelFileError(f"onnxruntime could not quantize {source}: {str(exc).strip()[:300]}") from exc
        finally:
            logging.disable(logging.NOTSET)
    return dest
