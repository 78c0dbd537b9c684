"""The local machine as a device: the same zipapp, run as a subprocess, over the same protocol."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from edgebench.errors import TransportError
from edgebench.transport.base import KILL_GRACE_S, SMALL_FILE_BYTES, Completed, Process, Transport
from edgebench.transport.declaration import TransportDeclaration

DECLARATION = TransportDeclaration("local", "this machine: the runner as a subprocess of the controller")

READ_BYTES = 65536


class LocalTransport(Transport):
    name = "local"
    # the runner opens the controller's model files where they are
    reads_controller_files = True

    def __init__(self, device):
        super().__init__(device)
        self.workdir = Path(os.path.expanduser(device.workdir))
        # the controller's own interpreter is the one that has the engines installed
        self.python = device.python or sys.executable
        # helpers need only the stdlib, and the controller's interpreter is certain to work here
        self.helper_python = sys.executable

    def workdir_path(self, *parts):
        return str(self.workdir.joinpath(*parts))

    def start(self, argv):
        try:
            # its own session: the runner leads a process group that one signal stops, engine child and all
            return _LocalProcess(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, start_new_session=True))
        except OSError as exc:
            raise TransportError(f"cannot start {argv[0]}: {exc}") from exc

    def read_file(self, path, limit=SMALL_FILE_BYTES):
        try:
            with open(path, "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransportError(f"cannot read {path}: {exc}") from exc

    def put_bytes(self, path, data):
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".put-", delete=False) as f:
                f.write(data)
            os.replace(f.name, target)
        except OSError as exc:
            raise TransportError(f"cannot write {path}: {exc}") from exc

    def pipe_file(self, argv, source, offset, progress=None):
        try:
            with open(source, "rb") as stdin:
                stdin.seek(offset)
                done = subprocess.run(argv, stdin=stdin, capture_output=True)
        except OSError as exc:
            raise TransportError(f"cannot run {argv[0]}: {exc}") from exc
        if progress:
            progress(Path(source).stat().st_size, Path(source).stat().st_size)
        return Completed(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))

    def run_shell(self, command, timeout_s=120):
        try:
            done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise TransportError(f"local command timed out after {timeout_s:g} s") from exc
        return done.returncode, done.stdout, done.stderr


class _LocalProcess(Process):
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.pieces: queue.Queue = queue.Queue()
        for name, pipe in (("out", proc.stdout), ("err", proc.stderr)):
            threading.Thread(target=_pump, args=(pipe, name, self.pieces), daemon=True).start()

    def send(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # it died at once; its exit status says why

    def close_stdin(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def receive(self, timeout):
        try:
            return self.pieces.get(timeout=timeout)
        except queue.Empty:
            return None

    def wait(self, timeout=None):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return code, (-code if code < 0 else None)

    def kill(self, group=None):
        """The process leads its own group (start_new_session), whatever `group` says."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self):
        self.close_stdin()


def _pump(pipe, name: str, pieces: queue.Queue) -> None:
    while True:
        data = pipe.read1(READ_BYTES)  # what is there now, not a full buffer: events arrive as they are written
        if not data:
            break
        pieces.put((name, data))
    pieces.put((name, b""))


TRANSPORT = LocalTransport
