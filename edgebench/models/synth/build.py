"""Build synthetic models from a `SynthSpec`, and keep a cache of built files."""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from pathlib import Path

from edgebench.errors import SynthError
from edgebench.models.synth import writer
from edgebench.models.synth.quantize import Progress, quantize
from edgebench.models.synth.shapes import shape_for
from edgebench.models.synth.spec import SynthSpec
from edgebench.paths import cache_root


def build_synthetic(spec: SynthSpec, out_path: str | os.PathLike[str], *,
                    progress: Progress | None = None) -> Path:
    """Write the F16 model for `spec`, quantize it unless the quant is F16, return `out_path`.

    `progress(done_bytes, total_bytes)` follows the F16 write, then `progress(done, n_tensors,
    "tensors")` the quantization (usually the slower part). llama.cpp's log goes to <cache>/logs/.
    The intermediate F16 file is always removed; `out_path` only ever appears complete.
    """
    shape = shape_for(spec)
    out_path = Path(out_path)
    if spec.quant == "F16":
        return writer.write_gguf(shape, out_path, progress=progress)
    f16 = out_path.with_name(f".{out_path.name}.f16-{os.getpid()}-{uuid.uuid4().hex[:8]}.gguf")
    try:
        writer.write_gguf(shape, f16, progress=progress)
        return quantize(f16, out_path, spec.quant, progress=progress)
    finally:
        f16.unlink(missing_ok=True)


def default_cache_dir() -> Path:
    return cache_root() / "models"


def cache_key(spec: SynthSpec) -> str:
    """Canonical spec + writer version: a writer change gives every spec a new key."""
    text = f"{spec.canonical()}|writer={writer.WRITER_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cache_path(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stem = spec.file_name().removesuffix(".gguf")
    return root / f"{stem}-w{writer.WRITER_VERSION}-{cache_key(spec)}.gguf"


def cached_synthetic(spec: SynthSpec, cache_dir: str | os.PathLike[str] | None = None,
                     progress: Progress | None = None) -> Path:
    """Return a built file for `spec` from the cache, building it first if needed.

    Concurrent callers (threads or processes) serialise on an flock'ed ``.lock`` file next to the
    model, so one builds and the others reuse. A cached file that fails the cheap check (non-empty,
    GGUF magic) is rebuilt.
    """
    path = cache_path(spec, cache_dir)
    if _usable(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if _usable(path):  # somebody built it while we waited
                return path
            path.unlink(missing_ok=True)
            build_synthetic(spec, path, progress=progress)
            if not _usable(path):
                raise SynthError(f"built synthetic model {path} but it does not look like GGUF")
            return path
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _usable(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0 and writer.is_gguf_file(path)
    except OSError:
        return False
