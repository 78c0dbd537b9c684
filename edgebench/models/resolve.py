"""Turn a profile's model reference into a local file with a known sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import ModelFileError
from edgebench.file_hashes import sha256_file
from edgebench.models.onnx_files import external_data_files


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    # of the file, or of the bundle when the model has external-data files (see bundle_sha256)
    sha256: str
    size: int
    # an ONNX model's external-data files: they travel with it and sit beside it on the device
    extra_files: tuple[Path, ...] = ()


def resolve_model(ref, progress=None) -> LocalModel:
    """Build a synthetic model (cached by its spec) or check a given file; verify sha256 if pinned."""
    if ref.synthetic is not None:
        from edgebench.models.synth.build import cached_synthetic
        path = Path(cached_synthetic(ref.synthetic, progress=progress))
    else:
        path = Path(ref.path)
        if not path.is_file():
            raise ModelFileError(f"model {ref.name}: file not found: {path}")
    return file_model(path, ref.name, expected_sha256=ref.sha256)


def file_model(path: Path, name: str | None = None, expected_sha256: str | None = None) -> LocalModel:
    """A model file with what travels with it (an ONNX model's external data), named on a device by
    the hash of the file or of the bundle; `run` and `push` both place a model through this."""
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    digest = sha256_file(path)
    if expected_sha256 and expected_sha256 != digest:
        raise ModelFileError(f"model {name}: sha256 mismatch for {path}: expected {expected_sha256}, got {digest}")
    extra = external_data_files(path) if path.suffix.lower() == ".onnx" else ()
    size = path.stat().st_size + sum(p.stat().st_size for p in extra)
    return LocalModel(name=name, path=path, sha256=bundle_sha256(path, extra) if extra else digest, size=size,
                      extra_files=extra)


def bundle_sha256(path: Path, extra: tuple[Path, ...]) -> str:
    """One name for a model and its external data: the hash of each file's name and hash."""
    lines = [f"{p.name}\0{sha256_file(p)}\n" for p in (path, *sorted(extra))]
    return hashlib.sha256("".join(lines).encode()).hexdigest()
