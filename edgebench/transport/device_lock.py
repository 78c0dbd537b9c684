"""One controller at a time per device: a lock held by a small process on the device.

The holder takes an flock on `<workdir>/lock` and keeps it for as long as its
stdin stays open. Its stdin is the controller's channel, so when the
controller finishes, crashes or is `kill -9`ed, the connection closes, the
holder reads EOF and exits, and the kernel drops the lock: there is no stale
lock file to clean up by hand.
"""

from __future__ import annotations

import json
import os
import socket
import time

from edgebench.errors import DeviceBusy, TransportError

# argv: lock path, owner JSON, "wait" | "nowait". Prints "busy <owner>" once while another holds it,
# then "locked"; exits 75 at once when busy and told not to wait, or when its stdin closes while waiting.
HOLDER = r"""
import fcntl, os, select, sys
path, owner, wait = sys.argv[1], sys.argv[2], sys.argv[3] == "wait"
d = os.path.dirname(path)
if d and not os.path.isdir(d):
    os.makedirs(d)
f = open(path, "a+")
told = False
while True:
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if not told:
            f.seek(0)
            lines = f.read().strip().splitlines()
            sys.stdout.write("busy %s\n" % (lines[-1] if lines else "{}"))
            sys.stdout.flush()
            told = True
        if not wait:
            sys.exit(75)
        ready = select.select([sys.stdin], [], [], 1.0)[0]
        if ready and not os.read(sys.stdin.fileno(), 1):
            sys.exit(75)
f.seek(0)
f.truncate()
f.write(owner + "\n")
f.flush()
sys.stdout.write("locked\n")
sys.stdout.flush()
while os.read(sys.stdin.fileno(), 4096):
    pass
"""

POLL_S = 0.5


def owner_record(run_id: str | None) -> dict:
    return {"controller": socket.gethostname(), "pid": os.getpid(), "run_id": run_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def describe_owner(text: str) -> str:
    try:
        owner = json.loads(text)
        return (f"controller {owner.get('controller')} pid {owner.get('pid')} "
                f"(run {owner.get('run_id')}, since {owner.get('since')})")
    except (ValueError, AttributeError):
        return "another controller"


class DeviceLock:
    """Held from `acquire` until `release` or until the controller's connection ends."""

    def __init__(self, transport, run_id: str | None = None):
        self.transport, self.run_id = transport, run_id
        self.process = None

    def acquire(self, wait: bool = True, on_wait=None) -> None:
        device = self.transport.device.name
        path = self.transport.workdir_path("lock")
        owner = json.dumps(owner_record(self.run_id), separators=(",", ":"))
        process = self.transport.spawn([self.transport.helper_python, "-c", HOLDER, path, owner,
                                        "wait" if wait else "nowait"])
        try:
            holder = None
            while True:
                if self.transport.cancelled:
                    raise KeyboardInterrupt
                line = process.readline(POLL_S)
                if line is None:
                    continue
                line = line.strip()
                if line == "locked":
                    self.process = process
                    return
                if line.startswith("busy "):
                    holder = describe_owner(line[5:])
                    if wait and on_wait:
                        on_wait(holder)
                    continue
                code, err = process.close()
                if holder and not wait:
                    raise DeviceBusy(f"{device} is in use by {holder}; run without --no-wait to wait for it")
                raise TransportError(f"{device}: cannot take the device lock {path} (exit {code}): {err.strip()}")
        except BaseException:
            if self.process is None:
                process.close()
            raise

    def release(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
