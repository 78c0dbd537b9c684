"""sha256 of files on the controller's disk, remembered in the cache's index so multi-GB models hash once.

Its own module because both model resolution (models/) and the push protocol (transport/) need it,
and transport must not depend on how a model reference becomes a file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edgebench.outputs import write_whole
from edgebench.paths import cache_root

CHUNK = 8 << 20


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
        write_whole(index_file, json.dumps(index))
    except OSError:
        pass  # the index only saves time
    return index[key]
