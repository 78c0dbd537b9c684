"""Run the edgebench CLI on a real pseudo-terminal of a given width, as a user at a terminal would."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def run_in_terminal(args, cwd, columns: int = 80, env=None, timeout: float = 600) -> tuple[int, str]:
    """(exit code, everything written to the terminal, escape sequences and all)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    proc = subprocess.Popen([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, stdin=slave,
                            stdout=slave, stderr=slave, env={**environ, "TERM": "xterm-256color", **(env or {})})
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: every writer has exited
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


def plain(text: str) -> str:
    """What the terminal shows, give or take cursor moves: no escape sequences, lines not carriage returns."""
    return _ESCAPE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def after_live_display(text: str) -> str:
    """What was printed after a live display erased itself for the last time (`\\x1b[2K` clears a line)."""
    return plain(text.rsplit("\x1b[2K", 1)[-1])
