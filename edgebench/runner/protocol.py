"""JSON-lines events from runner to controller.

Every event is one line: {"event": <kind>, ...}. stdout carries nothing else,
so engines that print must be kept off it (see main.py, which moves fd 1).
"""

from __future__ import annotations

import json
import os
import signal
import threading

EVENTS = ("hello", "start", "telemetry", "sample", "error", "done")


class Emitter:
    """Writes events to a stream; shared by the main and the sampler thread."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields) -> None:
        assert event in EVENTS, event
        fields["event"] = event
        line = json.dumps(fields, separators=(",", ":"), allow_nan=False, default=str)
        with self._lock:
            try:
                self._stream.write(line + "\n")
                self._stream.flush()
            except OSError:
                _controller_gone()


def _controller_gone():
    """Nobody reads our events any more (the SSH channel or the local pipe closed): measuring on
    would only heat the device, so stop the runner and its engine child together."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(1)


class RunnerFailure(Exception):
    """An error the runner reports as a structured event before exiting non-zero."""

    def __init__(self, kind: str, message: str, **details):
        super().__init__(message)
        self.kind, self.message, self.details = kind, message, details
