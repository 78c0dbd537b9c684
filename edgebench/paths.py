"""Where edgebench keeps what it can rebuild: synthetic models, hash index, tool builds."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EDGEBENCH_CACHE"


def cache_root() -> Path:
    """$EDGEBENCH_CACHE, else ~/.cache/edgebench."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgebench"
