"""llama.cpp's log while the controller runs it in its own process (the quantizer): into a file.

llama.cpp logs a line per metadata key and per tensor, 40 to 180 lines for one model, through the
log callback that llama-cpp-python points at `sys.stderr`. On a terminal, a live progress display
has taken over `sys.stderr`, so every one of those lines would scroll through it. Here the callback
and fd 2 (where ggml's own prints go) both write to <cache>/logs/ instead, and each complete line
is handed on as it arrives, so a caller can show progress from it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from edgebench.paths import cache_root

#: logs kept under <cache>/logs/; older ones are removed as new ones are written
KEEP_LOGS = 20

# fd 2 and llama.cpp's log callback are process-wide: in-process engine work takes turns
_ENGINE_LOCK = threading.Lock()


def log_dir() -> Path:
    return cache_root() / "logs"


@contextlib.contextmanager
def engine_log(task: str, on_line: Callable[[str], None] | None = None) -> Iterator[Path]:
    """For the duration, send llama.cpp's log to a new file named after `task` and call
    `on_line(line)` for each line of it; yield the file's path (to name it in an error)."""
    import llama_cpp

    directory = log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    _prune(directory)
    path = directory / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{_safe(task)}.log"
    with _ENGINE_LOCK, open(path, "ab", buffering=0) as log:
        lines = _LineSplitter(on_line)

        def write(_level, text, _user):
            if text:
                log.write(text)
                lines.feed(text.decode("utf-8", "replace"))

        callback = llama_cpp.llama_log_callback(write)  # kept alive until restored below: C holds it
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
        try:
            with _fd2_to(log.fileno()):
                yield path
        finally:
            lines.flush()
            _restore_default_log(llama_cpp)


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class _LineSplitter:
    """llama.cpp logs a line in pieces (a tensor's name, then its size): hand on whole lines."""

    def __init__(self, on_line: Callable[[str], None] | None):
        self.on_line, self.partial = on_line, ""

    def feed(self, text: str) -> None:
        if self.on_line is None:
            return
        *complete, self.partial = (self.partial + text).split("\n")
        for line in complete:
            self.on_line(line)

    def flush(self) -> None:
        if self.on_line is not None and self.partial:
            self.on_line(self.partial)
        self.partial = ""


@contextlib.contextmanager
def _fd2_to(fd: int):
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (an embedded interpreter): nothing to redirect
        yield
        return
    os.dup2(fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _restore_default_log(llama_cpp) -> None:
    """Back to llama-cpp-python's own callback (or llama.cpp's default, stderr, without it)."""
    default = getattr(getattr(llama_cpp, "_logger", None), "llama_log_callback", None)
    llama_cpp.llama_log_set(default, ctypes.c_void_p(0))


def _safe(task: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in task)[:80]


def _prune(directory: Path) -> None:
    # names start with the time they were written, so the oldest sort first
    for old in sorted(directory.glob("*.log"))[:-(KEEP_LOGS - 1)]:
        old.unlink(missing_ok=True)
