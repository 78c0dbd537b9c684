"""The zipapp's entry point: picks the mode before anything heavy is imported.

    python3 runner.pyz run | capabilities | cooldown ...   # JSON-lines events (main.py)
    python3 runner.pyz store ...                           # the model store's device side (device_store.py)
    python3 runner.pyz lock ...                            # the device lock's holder (lock_holder.py)
    python3 runner.pyz engine install ...                  # an engine install-engine -d pushed (engine_unpack.py)

The event modes load engines and telemetry (tens of milliseconds, more on a
small board); the helper modes the controller runs around them need a few
stdlib modules only, so they start as fast as Python does.
"""

from __future__ import annotations

import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    mode = argv[0] if argv else "run"
    if mode == "store":
        from .device_store import main as store
        return store(argv[1:])
    if mode == "lock":
        from .lock_holder import main as lock
        return lock(argv[1:])
    if mode == "engine":
        from .engine_unpack import main as engine
        return engine(argv[1:])
    from .main import main as events
    return events(argv)
