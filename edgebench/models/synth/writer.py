"""Write a random-weight F16 GGUF file for a `ModelShape`, tensor by tensor, in bounded memory.

Weight values do not affect token/s, so the data is drawn from one pool of small random values
(normal * 0.02, F16) that is generated once per file and streamed out at pseudo-random offsets.
Peak memory does not grow with the model: the pool (32 MiB, kept twice over so any window is
contiguous), the vocabulary metadata and the largest F32 tensor (a few MB) -- about 220 MB RSS
measured while writing qwen3.5-4b?layers=8 -- and a multi-GB file is written at disk speed.

The file is written under a temporary name in the target directory, flushed and fsynced, and
renamed onto the final name only when complete.
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Callable

import numpy as np

from edgebench.errors import DiskFullError, SynthError
from edgebench.models.synth.shapes import N_BASE_TOKENS, ModelShape, TensorSpec
from edgebench.outputs import replacing

#: Bump whenever the bytes written for a given shape change; `build.cached_synthetic` keys on it.
WRITER_VERSION = 1

GGUF_MAGIC = b"GGUF"
WEIGHT_STD = 0.02
POOL_ELEMENTS = 16 * 1024 * 1024  # 32 MiB of F16
CHUNK_ELEMENTS = 8 * 1024 * 1024  # write in 16 MiB pieces

Progress = Callable[[int, int], None]


def write_gguf(shape: ModelShape, path: str | os.PathLike[str], *, seed: int = 0,
               progress: Progress | None = None) -> Path:
    """Write `shape` as an F16 GGUF file at `path` (atomically) and return the path.

    `progress(done_bytes, total_bytes)` is called as tensor data is written (total counts tensor
    bytes only, not the few-MB header).
    """
    import gguf  # heavy import, only needed here

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    specs = shape.tensors()
    total = sum(t.nbytes for t in specs)
    try:
        with replacing(path) as tmp:
            writer = _fast_writer_class(gguf)(tmp, shape.arch)
            try:
                _add_metadata(writer, shape, gguf)
                for t in specs:
                    dtype = np.float16 if t.dtype == "F16" else np.float32
                    writer.add_tensor_info(t.name, t.shape, np.dtype(dtype), t.nbytes)
                writer.write_header_to_file()
                writer.write_kv_data_to_file()
                writer.write_ti_data_to_file()
                fout = writer.fout[0]
                writer.write_padding(fout, fout.tell())  # data section starts aligned
                _write_data(fout, writer, specs, seed, total, progress)
                fout.flush()
                os.fsync(fout.fileno())
            finally:
                writer.close()
    except BaseException as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left on {path.parent} for synthetic model {path.name} "
                                f"(needs about {total / 1e9:.1f} GB): {exc}") from exc
        if isinstance(exc, OSError):
            raise SynthError(f"could not write synthetic model {path}: {exc}") from exc
        raise
    return path


def _fast_writer_class(gguf):
    """GGUFWriter whose metadata packing handles big arrays (a 248K-token vocabulary) in one go.

    The stock writer packs array items one by one (about 4 s for 248K tokens); this produces the
    same bytes ~20x faster. Anything it does not recognise goes through the stock code.
    """
    VT = gguf.GGUFValueType
    numeric = {VT.INT32: "<i4", VT.UINT32: "<u4", VT.FLOAT32: "<f4"}

    class FastWriter(gguf.GGUFWriter):
        def _pack_val(self, val, vtype, add_vtype, sub_type=None):
            if (vtype == VT.ARRAY and len(val) > 256 and not isinstance(val, (bytes, str))
                    and self.endianess == gguf.GGUFEndian.LITTLE):
                ltype = sub_type if sub_type is not None else VT.get_type(val[0])
                head = (struct.pack("<I", VT.ARRAY) if add_vtype else b"")
                head += struct.pack("<IQ", ltype, len(val))
                if ltype == VT.STRING and all(type(v) is str for v in val):
                    enc = [v.encode("utf-8") for v in val]
                    return head + b"".join([struct.pack("<Q", len(e)) + e for e in enc])
                if ltype in numeric:
                    arr = np.asarray(val)
                    kinds = "f" if ltype == VT.FLOAT32 else "iu"
                    if arr.ndim == 1 and arr.dtype.kind in kinds:
                        return head + arr.astype(numeric[ltype]).tobytes()
            return super()._pack_val(val, vtype, add_vtype, sub_type)

    return FastWriter


def _write_data(fout, writer, specs: list[TensorSpec], seed: int, total: int,
                progress: Progress | None) -> None:
    rng = np.random.default_rng(seed)
    biggest = max((t.n_elements for t in specs if t.dtype == "F16"), default=1)
    pool_len = min(POOL_ELEMENTS, biggest)
    pool = (rng.standard_normal(pool_len, dtype=np.float32) * WEIGHT_STD).astype(np.float16)
    ring = np.concatenate([pool, pool])  # any window of <= pool_len elements is contiguous
    del pool
    done = 0
    for t in specs:
        if t.dtype == "F16":
            remaining = t.n_elements
            while remaining:
                n = min(remaining, pool_len, CHUNK_ELEMENTS)
                start = int(rng.integers(pool_len))
                fout.write(ring[start:start + n].data)
                remaining -= n
                done += 2 * n
                if progress is not None:
                    progress(done, total)
        else:
            data = _f32_tensor(t, rng)
            assert data.nbytes == t.nbytes
            fout.write(data.data)
            done += t.nbytes
            if progress is not None:
                progress(done, total)
        writer.write_padding(fout, t.nbytes)


def _f32_tensor(t: TensorSpec, rng: np.random.Generator) -> np.ndarray:
    if t.init == "ones":
        return np.ones(t.shape, dtype=np.float32)
    if t.init == "dt_bias":
        return np.ones(t.shape, dtype=np.float32)
    if t.init == "ssm_a":
        # llama.cpp stores -exp(A_log); HF initialises A uniformly in (0, 16): keep it away from 0
        return -rng.uniform(1.0, 16.0, size=t.shape).astype(np.float32)
    if t.init == "conv":
        bound = 1.0 / np.sqrt(t.shape[-1])  # default init of a depthwise conv with kernel K
        return rng.uniform(-bound, bound, size=t.shape).astype(np.float32)
    return (rng.standard_normal(t.shape, dtype=np.float32) * WEIGHT_STD).astype(np.float32)


def _add_metadata(w, shape: ModelShape, gguf) -> None:
    w.add_type("model")
    w.add_name(f"synthetic {shape.name}")
    w.add_description("edgebench synthetic model: random weights with the shape of "
                      f"{shape.name}; for speed measurement only, its output is meaningless")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_bool("edgebench.synthetic", True)
    w.add_string("edgebench.synth.preset", shape.name)
    w.add_uint32("edgebench.synth.writer_version", WRITER_VERSION)

    for key, value in shape.gguf_metadata().items():
        _add_typed(w, key, value, gguf)
    _add_tokenizer(w, shape.n_vocab, gguf)


def _add_typed(w, key: str, value, gguf) -> None:
    """One key with the GGUF type llama.cpp's loader expects for it (it checks types strictly)."""
    VT = gguf.GGUFValueType
    if isinstance(value, bool):
        w.add_key_value(key, value, VT.BOOL)
    elif isinstance(value, int):
        w.add_key_value(key, value, VT.UINT32)
    elif isinstance(value, float):
        w.add_key_value(key, value, VT.FLOAT32)
    elif isinstance(value, str):
        w.add_key_value(key, value, VT.STRING)
    elif isinstance(value, (list, tuple)):
        w.add_array(key, list(value))
    else:
        raise TypeError(f"no GGUF type for {key} = {value!r}")


def _add_tokenizer(w, n_vocab: int, gguf) -> None:
    """The minimal SentencePiece ("llama") vocabulary, padded with plain tokens up to n_vocab."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [int(gguf.TokenType.UNKNOWN), int(gguf.TokenType.CONTROL), int(gguf.TokenType.CONTROL)]
    types += [int(gguf.TokenType.BYTE)] * 256
    assert len(tokens) == N_BASE_TOKENS
    n_pad = n_vocab - N_BASE_TOKENS
    tokens += [f"\u2581synth{i}" for i in range(n_pad)]
    types += [int(gguf.TokenType.NORMAL)] * n_pad
    scores = [0.0] * N_BASE_TOKENS + [-float(i) for i in range(1, n_pad + 1)]
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_scores(scores)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)


def is_gguf_file(path: str | os.PathLike[str]) -> bool:
    """Cheap validity check: a non-empty regular file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False
