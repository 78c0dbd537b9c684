"""The local machine as a device: the same zipapp, run as a subprocess, over the same protocol."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgebench.errors import RunnerTimeout, TransportError
from edgebench.transport.base import EventStream, PushResult, Spawned, Transport, conclude
from edgebench.zipapp import write_runner

KILL_GRACE_S = 3.0


class LocalTransport(Transport):
    name = "local"

    def __init__(self, device):
        super().__init__(device)
        self.workdir = Path(os.path.expanduser(device.workdir))
        # the controller's own interpreter is the one that has the engines installed
        self.python = device.python or sys.executable
        # helpers need only the stdlib, and the controller's interpreter is certain to work here
        self.helper_python = sys.executable

    def run_shell(self, command, timeout_s=120):
        try:
            done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"local command timed out after {timeout_s:g} s") from exc
        return done.returncode, done.stdout, done.stderr

    def spawn(self, argv):
        try:
            return _LocalProcess(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, text=True, start_new_session=True))
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc}") from exc

    def workdir_path(self, *parts):
        return str(self.workdir.joinpath(*parts))

    def install_runner(self) -> str:
        try:
            return str(write_runner(self.workdir / "runner"))
        except OSError as exc:
            raise TransportError(f"cannot write the runner under {self.workdir}: {exc}") from exc

    def push_model(self, local_path: str, sha256: str, progress=None, extra_files=()) -> PushResult:
        # the local device reads the controller's own files (external data beside them): nothing to copy
        return PushResult(path=str(Path(local_path).resolve()), sent_bytes=0, skipped=True)

    def run_runner(self, runner, mode, job, timeout_s, on_event):
        stream = EventStream(on_event)
        try:
            proc = subprocess.Popen([self.python, runner, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as exc:
            raise TransportError(f"cannot start {self.python}: {exc}") from exc
        lines: queue.Queue = queue.Queue()
        readers = [threading.Thread(target=_pump, args=(proc.stdout, lines, "out"), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, lines, "err"), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.stdin.write(json.dumps(job) if job is not None else "")
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the runner died at once; its exit status says why
        deadline = time.monotonic() + timeout_s
        open_streams = 2
        try:
            while open_streams:
                if self.cancelled:
                    raise KeyboardInterrupt
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _kill_group(proc)
                    ended = stream.ended(None)
                    raise RunnerTimeout(f"runner exceeded the {timeout_s:g} s cell timeout and was killed",
                                        stderr_tail=ended.stderr_tail, cause=ended.cause)
                try:
                    source, line = lines.get(timeout=min(remaining, 1.0))
                except queue.Empty:
                    continue
                if line is None:
                    open_streams -= 1
                elif source == "out":
                    stream.feed_line(line)
                else:
                    stream.feed_stderr(line)
            code = proc.wait()
        except BaseException:
            _kill_group(proc)
            raise
        return conclude(stream, stream.ended(code, signal=-code if code < 0 else None))


class _LocalProcess(Spawned):
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, self.lines, "out"), daemon=True).start()

    def readline(self, timeout):
        try:
            return self.lines.get(timeout=timeout)[1] or ""
        except queue.Empty:
            return None

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc)
            code = self.proc.wait()
        return code, self.proc.stderr.read()


def _pump(pipe, lines: queue.Queue, source: str) -> None:
    for line in pipe:
        lines.put((source, line))
    lines.put((source, None))


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the runner and anything it started (a llama-bench child), politely first."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue
