"""One run of the runner on a device, over any transport: the job in, JSON-lines events out.

The session checks the protocol as events arrive, keeps the tail of the
runner's stderr (with the lines that say why, even when they scroll out of
it), stops the runner and everything it started on timeout or cancel, and
decides from the events and the exit how the run ended.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from edgebench.errors import RunnerError, RunnerTimeout, TransportError
from edgebench.runner import PROTOCOL_VERSION
from edgebench.runner.crashes import SIGKILL, StderrTail, explain, in_engine, main_cause
from edgebench.runner.oom_kills import KERNEL_LOG_COMMAND, KERNEL_LOG_TIMEOUT_S, kill_of, why_killed
from edgebench.runner.protocol import EVENTS
from edgebench.transport.output_polling import POLL_S, Lines, TextOutput

STDERR_TAIL_LINES = 30
TELEMETRY_KEPT = 5
EventHandler = Callable[[dict], None]


@dataclass
class RunnerExit:
    """How a runner process ended, as the transport saw it."""

    exit_code: int | None
    signal: int | None = None
    stderr_tail: str = ""
    cause: str | None = None  # the stderr line that says why, even if it scrolled out of the tail
    oom: str | None = None  # why a SIGKILL was the kernel's out-of-memory killer, where it was


class EventStream:
    """Turns the runner's stdout lines into events; anything else is a protocol fault."""

    def __init__(self, on_event: EventHandler):
        self.on_event = on_event
        self.hello: dict | None = None
        self.last_error: dict | None = None
        self.done: dict | None = None
        self.telemetry: list[dict] = []  # the last few samples: the memory a runner killed by SIGKILL held
        self.stderr = StderrTail(STDERR_TAIL_LINES)
        self._stderr_lines = Lines()

    def feed_stderr(self, text: str) -> None:
        """Stderr as it arrives, in pieces that may end mid-line."""
        for line in self._stderr_lines.feed(text):
            self.stderr.add(line)

    def ended(self, exit_code: int | None, signal: int | None = None, oom: str | None = None) -> RunnerExit:
        rest = self._stderr_lines.rest()
        if rest:
            self.stderr.add(rest)
        return RunnerExit(exit_code=exit_code, signal=signal, stderr_tail=self.stderr.text(),
                          cause=self.stderr.cause(), oom=oom)

    @property
    def pid(self) -> int | None:
        """The runner's pid on the device, which leads its process group (from its hello)."""
        return (self.hello or {}).get("pid")

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
        elif kind == "telemetry":
            self.telemetry = self.telemetry[-(TELEMETRY_KEPT - 1):] + [dict(event)]
        self.on_event(event)

    @staticmethod
    def _check_protocol(hello: dict) -> None:
        # the runner is pushed by this controller, so a mismatch means a stale or foreign runner on the
        # device: reading its events by another protocol's rules would store wrong numbers
        version = hello.get("protocol")
        if version != PROTOCOL_VERSION:
            raise RunnerError(f"the runner on the device speaks protocol {version!r} but this controller speaks "
                              f"{PROTOCOL_VERSION}; they come from different edgebench versions", kind="protocol")


def run_runner(transport, runner: str, mode: str, job: dict | None, timeout_s: float,
               on_event: EventHandler) -> dict:
    """Run the runner to completion, calling on_event for each event; its `done` event, or
    RunnerError / RunnerTimeout / TransportError. On timeout, cancel (KeyboardInterrupt) or any
    other failure the runner's process group is stopped before this returns."""
    stream = EventStream(on_event)
    process = transport.start([transport.python, runner, mode])
    stopped = False
    try:
        process.send(json.dumps(job).encode() if job is not None else b"")
        process.close_stdin()
        output, lines = TextOutput(process), Lines()
        deadline = time.monotonic() + timeout_s
        while not output.ended:
            if transport.cancelled:
                raise KeyboardInterrupt
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                process.kill(stream.pid)
                stopped = True
                ended = stream.ended(None)
                raise RunnerTimeout(f"runner exceeded the {timeout_s:g} s cell timeout and was killed",
                                    stderr_tail=ended.stderr_tail, cause=ended.cause)
            text, errors = output.poll(min(remaining, POLL_S))
            if errors:
                stream.feed_stderr(errors)
            for line in lines.feed(text) + ([lines.rest()] if output.ended else []):
                stream.feed_line(line)
        code, signal = process.wait()
    except BaseException:
        if not stopped:
            process.kill(stream.pid)
        raise
    finally:
        process.close()
    return conclude(stream, stream.ended(code, signal=signal, oom=oom_explanation(transport, stream, signal)))


def oom_explanation(transport, stream: EventStream, signal: int | None) -> str | None:
    """Why the runner died by SIGKILL, when it was the kernel's out-of-memory killer: the device's kernel
    log, read through the transport, names the runner's pid (from its hello), or else the memory it
    last reported was at its limit. None for any other end (a runner's own error comes as its event)."""
    if signal != SIGKILL or stream.last_error is not None or stream.pid is None:
        return None
    try:
        _code, log, _err = transport.run_shell(KERNEL_LOG_COMMAND, timeout_s=KERNEL_LOG_TIMEOUT_S)
    except TransportError:
        log = ""  # the device is gone too: the memory it last reported is all there is
    return why_killed(kill_of(log, stream.pid), stream.telemetry)


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
    if ended.oom:
        raise RunnerError(f"runner died from signal {ended.signal}: {ended.oom}", kind="oom",
                          exit_code=ended.exit_code, signal=ended.signal, stderr_tail=tail, cause=cause)
    if ended.signal:
        # the runner enables faulthandler, so a fault inside an engine shows the engine's frames
        why = explain(ended.signal, tail, engine=in_engine(tail))
        raise RunnerError(f"runner died from signal {ended.signal}" + (f": {why}" if why else ""), kind="crashed",
                          exit_code=ended.exit_code, signal=ended.signal, stderr_tail=tail, cause=cause)
    raise RunnerError(f"runner exited with code {ended.exit_code} without reporting why", kind="crashed",
                      exit_code=ended.exit_code, stderr_tail=tail, cause=cause)
