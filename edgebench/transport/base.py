"""The transport interface: how the controller reaches one device.

A transport places files on the device and runs the runner there, streaming
its JSON-lines events back. Library errors (subprocess, paramiko) are turned
into edgebench's error hierarchy here, at the edge.
"""

from __future__ import annotations

import abc
import json
import threading
from dataclasses import dataclass
from typing import Callable

from edgebench.errors import RunnerError
from edgebench.runner import PROTOCOL_VERSION
from edgebench.runner.crashes import StderrTail, explain, in_engine, main_cause
from edgebench.runner.protocol import EVENTS

STDERR_TAIL_LINES = 30
EventHandler = Callable[[dict], None]


@dataclass(frozen=True)
class Evicted:
    """A model the device's cache dropped (least recently used) to stay under max_cache_gb."""

    sha256: str
    file: str
    size: int


@dataclass(frozen=True)
class PushResult:
    """Where a model is on the device and what it took to put it there."""

    path: str
    sent_bytes: int
    skipped: bool
    resumed_from: int = 0
    evicted: tuple[Evicted, ...] = ()


@dataclass
class RunnerExit:
    """How a runner process ended, as the transport saw it."""

    exit_code: int | None
    signal: int | None = None
    stderr_tail: str = ""
    cause: str | None = None  # the stderr line that says why, even if it scrolled out of the tail


class EventStream:
    """Turns the runner's stdout lines into events; anything else is a protocol fault."""

    def __init__(self, on_event: EventHandler):
        self.on_event = on_event
        self.hello: dict | None = None
        self.last_error: dict | None = None
        self.done: dict | None = None
        self.stderr = StderrTail(STDERR_TAIL_LINES)
        self._partial = ""

    def feed_stderr(self, text: str) -> None:
        """Stderr as it arrives, in chunks that may end mid-line (an SSH channel's)."""
        *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self.stderr.add(line)

    def ended(self, exit_code: int | None, signal: int | None = None) -> RunnerExit:
        if self._partial:
            self.stderr.add(self._partial)
            self._partial = ""
        return RunnerExit(exit_code=exit_code, signal=signal, stderr_tail=self.stderr.text(),
                          cause=self.stderr.cause())

    def feed_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            event = json.loads(line)
        except ValueError:
            raise RunnerError(f"runner printed a line that is not an event: {line[:200]!r}", kind="protocol")
        kind = event.get("event") if isinstance(event, dict) else None
        if kind not in EVENTS:
            raise RunnerError(f"runner sent an undeclared event {kind!r}: {line[:200]!r}", kind="protocol")
        if self.hello is None and kind != "hello":
            raise RunnerError(f"runner did not start with a hello event: {line[:200]!r}", kind="protocol")
        if kind == "hello":
            self._check_protocol(event)
            self.hello = event
        elif kind == "error":
            self.last_error = event
        elif kind == "done":
            self.done = event
        self.on_event(event)

    @staticmethod
    def _check_protocol(hello: dict) -> None:
        # the runner is pushed by this controller, so a mismatch means a stale or foreign runner on the
        # device: reading its events by another protocol's rules would store wrong numbers
        version = hello.get("protocol")
        if version != PROTOCOL_VERSION:
            raise RunnerError(f"the runner on the device speaks protocol {version!r} but this controller speaks "
                              f"{PROTOCOL_VERSION}; they come from different edgebench versions", kind="protocol")


class Spawned(abc.ABC):
    """A long-lived helper process on the device whose stdin the controller holds open."""

    @abc.abstractmethod
    def readline(self, timeout: float) -> str | None:
        """The next stdout line; "" at end of output; None if nothing came within `timeout`."""

    @abc.abstractmethod
    def close(self) -> tuple[int | None, str]:
        """Close its stdin and let it end; return (exit code, stderr)."""


class Transport(abc.ABC):
    name = ""
    python = ""  # the device's interpreter for the runner (and its engines)
    helper_python = ""  # an interpreter for stdlib-only helpers such as the device lock

    def __init__(self, device):
        self.device = device
        # set by the controller: when it fires, a running runner is stopped and KeyboardInterrupt raised
        self.cancel: threading.Event | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @abc.abstractmethod
    def run_shell(self, command: str, timeout_s: float = 120) -> tuple[int, str, str]:
        """Run a (fully quoted) shell command on the device; return (exit code, stdout, stderr)."""

    @abc.abstractmethod
    def spawn(self, argv: list[str]) -> Spawned:
        """Start argv on the device (every argument quoted) with stdin kept open."""

    @abc.abstractmethod
    def workdir_path(self, *parts: str) -> str:
        """A path under the device's edgebench workdir, as the device sees it."""

    @abc.abstractmethod
    def install_runner(self) -> str:
        """Make the runner zipapp present on the device; return its path there."""

    @abc.abstractmethod
    def push_model(self, local_path: str, sha256: str, progress=None, extra_files=()) -> PushResult:
        """Make the model present on the device (verified, resumable, skipped if there). With
        extra_files (an ONNX model's external data) `sha256` names the bundle, and the files
        sit side by side under their own names."""

    @abc.abstractmethod
    def run_runner(self, runner: str, mode: str, job: dict | None, timeout_s: float,
                   on_event: EventHandler) -> dict:
        """Run the runner to completion, calling on_event for each event; return its `done`
        event, or raise RunnerError / RunnerTimeout / TransportError."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def conclude(stream: EventStream, ended: RunnerExit) -> dict:
    """Decide how a cell ended from the events seen and the process exit: the runner's own
    structured error wins; otherwise a signal or exit code tells what killed it. Either way the
    engine's own line for why (from its stderr) goes with the error."""
    tail, cause = ended.stderr_tail, ended.cause
    if stream.done is not None and ended.exit_code == 0:
        return stream.done
    if stream.last_error is not None:
        err = stream.last_error
        # a llama-bench child's stderr comes inside the error event, not on the runner's stderr
        child = err.get("stderr_tail") or ""
        raise RunnerError(err.get("message", "runner failed"), kind=err.get("kind"),
                          exit_code=ended.exit_code, signal=ended.signal,
                          stderr_tail="\n".join(text for text in (child, tail) if text),
                          cause=main_cause(child) or cause)
    if ended.signal:
        # the runner enables faulthandler, so a fault inside an engine shows the engine's frames
        why = explain(ended.signal, tail, engine=in_engine(tail))
        raise RunnerError(f"runner died from signal {ended.signal}" + (f": {why}" if why else ""), kind="crashed",
                          exit_code=ended.exit_code, signal=ended.signal, stderr_tail=tail, cause=cause)
    raise RunnerError(f"runner exited with code {ended.exit_code} without reporting why", kind="crashed",
                      exit_code=ended.exit_code, stderr_tail=tail, cause=cause)
