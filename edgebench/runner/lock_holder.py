"""The device lock's holder: one controller at a time per device.

    python3 runner.pyz lock LOCK_PATH OWNER_JSON wait|nowait

It takes an flock on LOCK_PATH and keeps it for as long as its stdin stays
open. Its stdin is the controller's channel, so when the controller finishes,
crashes or is `kill -9`ed, the channel closes, the holder reads EOF and exits,
and the kernel drops the lock: no stale lock file is left to clean up by hand.

It prints `busy <owner JSON>` once while another controller holds the lock,
then `locked` once it has it. It exits 75 at once when the lock is busy and it
was told not to wait, or when its stdin closes while it waits.
"""

from __future__ import annotations

import fcntl
import os
import select
import sys

EXIT_BUSY = 75  # EX_TEMPFAIL
POLL_S = 1.0


def _say(out, line):
    out.write(line + "\n")
    out.flush()


def _last_owner(lock_file):
    lock_file.seek(0)
    lines = lock_file.read().strip().splitlines()
    return lines[-1] if lines else "{}"


def _stdin_closed(fd, timeout):
    """Whether the controller's side has gone (EOF), waiting up to `timeout` to see."""
    ready = select.select([fd], [], [], timeout)[0]
    return bool(ready) and not os.read(fd, 1)


def hold(path, owner, wait, stdin_fd=0, out=None):
    """Take the lock, then hold it until stdin ends; the exit status."""
    out = out or sys.stdout
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    lock_file = open(path, "a+")
    told = False
    while True:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if not told:
                _say(out, "busy %s" % _last_owner(lock_file))
                told = True
            if not wait or _stdin_closed(stdin_fd, POLL_S):
                return EXIT_BUSY
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(owner + "\n")
    lock_file.flush()
    _say(out, "locked")
    while os.read(stdin_fd, 4096):
        pass
    return 0


def main(argv):
    if len(argv) != 3 or argv[2] not in ("wait", "nowait"):
        sys.stderr.write("edgebench: usage: lock LOCK_PATH OWNER_JSON wait|nowait\n")
        return 2
    try:
        return hold(argv[0], argv[1], argv[2] == "wait")
    except OSError as exc:
        sys.stderr.write("edgebench: %s\n" % exc)
        return 1
