"""The transport interface: the few things the controller needs to reach one device.

A transport starts processes on the device and hands over their streams, puts
small files there, reads small files back, pipes a local file into a device
command (the bulk route) and runs a shell command for the fact probe. What is
built from these is written once, above every transport: the runner session
(runner_session.py), the push protocol (remote_store.py) and the device lock
(device_lock.py). Library errors (subprocess, paramiko) become edgebench's
error hierarchy here, at the edge.
"""

from __future__ import annotations

import abc
import threading
from pathlib import Path
from typing import Callable, NamedTuple

# how long a process asked to stop gets before it is killed
KILL_GRACE_S = 3.0
SMALL_FILE_BYTES = 1 << 20
Progress = Callable[[int, int], None]


class Completed(NamedTuple):
    code: int
    out: str
    err: str


class Process(abc.ABC):
    """A process started on the device, with its stdin, stdout and stderr."""

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Write to its stdin. A process that has already gone is not an error here: how it ended says why."""

    @abc.abstractmethod
    def close_stdin(self) -> None:
        """End its stdin (it reads EOF)."""

    @abc.abstractmethod
    def receive(self, timeout: float) -> tuple[str, bytes] | None:
        """The next piece of its output as ("out" | "err", bytes), with b"" once that stream has
        ended; None when nothing came within `timeout`. Raises ConnectionLost when the device can
        no longer be reached."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> tuple[int | None, int | None] | None:
        """(exit code, signal that killed it) as the transport reports them; None if it is still
        running after `timeout`."""

    @abc.abstractmethod
    def kill(self, group: int | None = None) -> None:
        """Stop it and what it started: SIGTERM to the process group, KILL_GRACE_S, then SIGKILL.
        `group` is a device pid that leads its own group (the runner reports its pid and leads one);
        without it the transport stops the process it started as best it can."""

    def close(self) -> None:
        """Let go of what the controller holds for it (pipes, a channel)."""


class Transport(abc.ABC):
    name = ""
    python = ""  # the device's interpreter for the runner (and its engines)
    helper_python = ""  # an interpreter for the runner's stdlib-only helper modes (store, lock)
    # the device reads the controller's own files: a model is used where it is, never pushed
    reads_controller_files = False

    def __init__(self, device):
        self.device = device
        # set by the controller: when it fires, what runs on the device is stopped and KeyboardInterrupt raised
        self.cancel: threading.Event | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @abc.abstractmethod
    def workdir_path(self, *parts: str) -> str:
        """A path under the device's edgebench workdir, as the device sees it."""

    @abc.abstractmethod
    def start(self, argv: list[str]) -> Process:
        """Start argv on the device (every argument passed as data, never through a shell's parsing)."""

    @abc.abstractmethod
    def read_file(self, path: str, limit: int = SMALL_FILE_BYTES) -> bytes | None:
        """Up to `limit` bytes of a file on the device; None when there is no such file."""

    @abc.abstractmethod
    def put_bytes(self, path: str, data: bytes) -> None:
        """Write a small file on the device, making its directory: under a name of its own first,
        then renamed into place, so `path` holds all of `data` or what it held before."""

    @abc.abstractmethod
    def pipe_file(self, argv: list[str], source: Path, offset: int, progress: Progress | None = None) -> Completed:
        """Run argv on the device with the bytes of `source` from `offset` on as its stdin, by the
        fastest route this transport has: how bulk bytes reach the device. Raises TransportError
        when the link fails mid-way (what arrived stays with the receiving command)."""

    @abc.abstractmethod
    def run_shell(self, command: str, timeout_s: float = 120) -> tuple[int, str, str]:
        """Run a (fully quoted) shell command on the device; (exit code, stdout, stderr). For the
        fact probe, which is a shell script."""

    def close(self) -> None:
        pass

    @classmethod
    def claim(cls, device, cancel: threading.Event | None, progress) -> dict | None:
        """Hold the device for a run's worker (see transport.claim); most transports need not."""
        return None

    @classmethod
    def let_go(cls, device) -> None:
        """Give back what `claim` held."""

    @classmethod
    def settle_claim(cls, device, where, needed: bool) -> str | None:
        """See transport.settle_claim."""
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
