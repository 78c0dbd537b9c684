"""Turn a profile's model reference into a local file with a known sha256."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import ModelFileError
from edgebench.paths import cache_root

CHUNK = 8 << 20


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    sha256: str
    size: int


def sha256_file(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so multi-GB models hash once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    index_file = cache_root() / "sha256-index.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    if key in index:
        return index[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    index[key] = digest.hexdigest()
    try:
        index_file.parent.mkdir(parents=True, exist_ok=True)
        partial = index_file.with_name(f"{index_file.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_text(json.dumps(index))
        partial.replace(index_file)
    except OSError:
        pass  # the index only saves time
    return index[key]


def resolve_model(ref, progress=None) -> LocalModel:
    """Build a synthetic model (cached by its spec) or check a given file; verify sha256 if pinned."""
    if ref.synthetic is not None:
        from edgebench.synth.build import cached_synthetic
        path = Path(cached_synthetic(ref.synthetic, progress=progress))
    else:
        path = Path(ref.path)
        if not path.is_file():
            raise ModelFileError(f"model {ref.name}: file not found: {path}")
    digest = sha256_file(path)
    if ref.sha256 and ref.sha256 != digest:
        raise ModelFileError(f"model {ref.name}: sha256 mismatch for {path}: expected {ref.sha256}, got {digest}")
    return LocalModel(name=ref.name, path=path, sha256=digest, size=path.stat().st_size)
