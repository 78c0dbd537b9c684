"""One controller at a time per device: a lock held by a small process on the device.

The holder is the runner's `lock` mode (runner/lock_holder.py). It keeps an
flock on `<workdir>/lock` for as long as its stdin stays open, and its stdin
is this controller's end: when the controller finishes, crashes or is
`kill -9`ed, the holder reads EOF and exits, and the kernel drops the lock.
"""

from __future__ import annotations

import json
import os
import socket
import time

from edgebench.errors import DeviceBusy, TransportError
from edgebench.transport.base import KILL_GRACE_S
from edgebench.transport.output_polling import Lines, TextOutput, helper_argv

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

    def __init__(self, transport, runner: str, run_id: str | None = None):
        self.transport, self.runner, self.run_id = transport, runner, run_id
        self.process = None

    def acquire(self, wait: bool = True, on_wait=None) -> None:
        device = self.transport.device.name
        path = self.transport.workdir_path("lock")
        owner = json.dumps(owner_record(self.run_id), separators=(",", ":"))
        process = self.transport.start(helper_argv(self.transport, self.runner, "lock", path, owner,
                                                   "wait" if wait else "nowait"))
        output, lines, stderr = TextOutput(process), Lines(), []
        try:
            holder = None
            while not output.ended:
                if self.transport.cancelled:
                    raise KeyboardInterrupt
                text, errors = output.poll(POLL_S)
                stderr.append(errors)
                for line in lines.feed(text):
                    line = line.strip()
                    if line == "locked":
                        self.process = process
                        return
                    if line.startswith("busy "):
                        holder = describe_owner(line[5:])
                        if wait and on_wait:
                            on_wait(holder)
            code = _stop(process)
            if holder and not wait:
                raise DeviceBusy(f"{device} is in use by {holder}; run without --no-wait to wait for it")
            raise TransportError(f"{device}: cannot take the device lock {path} (exit {code}): "
                                 f"{''.join(stderr).strip()}")
        except BaseException:
            if self.process is None:
                _stop(process)
            raise

    def release(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            _stop(process)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _stop(process) -> int | None:
    """End the holder's stdin, which lets it go; stop it if it does not end in time."""
    try:
        process.close_stdin()
        ended = process.wait(KILL_GRACE_S)
    except TransportError:
        ended = None  # the connection is gone, and the holder with it
    try:
        if ended is None:
            process.kill()
        return ended[0] if ended else None
    finally:
        process.close()
