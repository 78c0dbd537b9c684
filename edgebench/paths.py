"""Where edgebench keeps what it can rebuild: synthetic models, hash index, tool builds."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "EDGEBENCH_CACHE"

# a name that becomes a directory here and on a device (a device's, a baseline's), and appears in
# shell commands: the pattern, and what it allows in words
DIRECTORY_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
DIRECTORY_NAME_RULE = "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def cache_root() -> Path:
    """$EDGEBENCH_CACHE, else ~/.cache/edgebench."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "edgebench"


STATE_ENV = "EDGEBENCH_STATE"


def state_root() -> Path:
    """$EDGEBENCH_STATE, else $XDG_STATE_HOME/edgebench, else ~/.local/state/edgebench: what edgebench
    learned and keeps between commands (a device's last probe)."""
    env = os.environ.get(STATE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state") / "edgebench"
