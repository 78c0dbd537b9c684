"""JSON-lines events from runner to controller.

Every event is one line: {"event": <kind>, ...}. stdout carries nothing else,
so engines that print must be kept off it (see main.py, which moves fd 1).
"""

from __future__ import annotations

import json
import os
import signal
import threading

# Every event either side may see, with what it carries. The runner refuses to emit anything else
# and the controller reads this same table, so a new event is declared here or nowhere.
EVENTS = {
    "hello": "first line of every runner: protocol, runner_version, python, pid",
    "start": "a cell's engine is loaded: info (llama-bench fields), test, runner_rss_kb, telemetry",
    "telemetry": "one sampler record: t, rss_kb, thermal_c, cpu_mhz, power_w, battery, ...",
    "sample": ("one timed repetition: rep, t_ns, ts, ttft_ns, window (telemetry summary), "
               "host (steal_pct, load1, n_cpus)"),
    "cooling": "a cool-down still waiting: temp_c, waited_s (every few seconds)",
    "error": "why the runner failed: kind, message, and details",
    "done": "the last line of a runner that succeeded, with what its mode produced",
}


class Emitter:
    """Writes events to a stream; shared by the main and the sampler thread."""

    def __init__(self, stream):
        self._stream = stream
        self._lock = threading.Lock()

    def emit(self, event: str, **fields) -> None:
        if event not in EVENTS:
            raise ValueError("undeclared runner event %r: declare it in runner/protocol.py" % event)
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
