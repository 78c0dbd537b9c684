"""A memory cgroup of its own for a test: a small device inside this machine, whose processes the
kernel's out-of-memory killer really kills at its limit.

Either hierarchy: cgroup v2 (`memory.max`, where the memory controller is mounted at /sys/fs/cgroup)
or v1 (`memory.limit_in_bytes` under /sys/fs/cgroup/memory, beside the cgroup this test runs in).
Swap is closed too, so a process over the limit is killed rather than swapped out. Needs root.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class MemoryCgroup:
    def __init__(self, path: Path, v2: bool):
        self.path, self.v2 = path, v2

    @property
    def procs(self) -> Path:
        """Where a process writes its pid to move into the cgroup."""
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        """How many processes the OOM killer killed in it so far (the kernel's own count)."""
        name, key = ("memory.events", "oom_kill") if self.v2 else ("memory.oom_control", "oom_kill")
        for line in (self.path / name).read_text().splitlines():
            field, _, value = line.partition(" ")
            if field == key:
                return int(value)
        raise AssertionError(f"{self.path / name} has no {key} count")


def _parent() -> tuple[Path, bool] | None:
    """Where a new memory cgroup can be made here, and whether it is v2; None when nowhere."""
    if "memory" in _read(ROOT / "cgroup.controllers").split() and \
            "memory" in _read(ROOT / "cgroup.subtree_control").split():
        return ROOT, True
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return ROOT / "memory" / path.lstrip("/"), False
    return None


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def unavailable() -> str | None:
    """Why no memory cgroup can be made here, or None."""
    if os.geteuid() != 0:
        return "root (to make a memory cgroup)"
    found = _parent()
    if found is None or not os.access(found[0], os.W_OK):
        return "a writable memory cgroup (cgroup v2 with the memory controller, or v1's memory hierarchy)"
    return None


@contextmanager
def memory_cgroup(name: str, limit_bytes: int):
    """A new cgroup limited to `limit_bytes` of memory (and no swap); removed afterwards, once the
    processes in it have ended."""
    parent, v2 = _parent()
    path = parent / f"{name}-{os.getpid()}"
    path.mkdir()
    try:
        if v2:
            (path / "memory.max").write_text(str(limit_bytes))
            if (path / "memory.swap.max").exists():
                (path / "memory.swap.max").write_text("0")
        else:
            (path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            if (path / "memory.memsw.limit_in_bytes").exists():
                (path / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        yield MemoryCgroup(path, v2)
    finally:
        _remove(path)


def _remove(path: Path, wait_s: float = 10.0) -> None:
    """rmdir, once the last process in it has gone (a killed one takes a moment to be reaped)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
