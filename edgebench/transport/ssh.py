"""A device over SSH: the same runner and protocol as `local`, only farther away."""

from __future__ import annotations

import json
import posixpath
import socket
import time
from pathlib import Path

import paramiko

from edgebench.errors import ConnectionLost, RunnerTimeout, TransportError
from edgebench.paths import cache_root
from edgebench.transport.base import EventStream, Spawned, Transport, conclude
from edgebench.transport.remote_store import RemoteStore
from edgebench.transport.sshconn import SshConnection, quote_argv, resolve_target
from edgebench.zipapp import runner_sha256, write_runner

POLL_S = 0.25
KILL_GRACE_S = 3


class SshTransport(Transport):
    name = "ssh"

    def __init__(self, device):
        super().__init__(device)
        self.target = resolve_target(device)
        self.conn = SshConnection(self.target)
        self.python = self.helper_python = device.python or "python3"
        self.workdir = self._absolute(device.workdir)
        max_bytes = int(device.max_cache_gb * 2**30) if device.max_cache_gb else None
        self.store = RemoteStore(self.conn, self.workdir, self.python, max_bytes)

    def _absolute(self, path: str) -> str:
        """`~` means the device user's home, which only the device knows."""
        if path == "~" or path.startswith("~/"):
            home = self.conn.check("printf '%s' \"$HOME\"", "reading $HOME").strip()
            path = home + path[1:]
        return posixpath.normpath(path)

    def run_shell(self, command, timeout_s=120):
        return self.conn.run(command, timeout=timeout_s)

    def spawn(self, argv):
        return _RemoteProcess(self.conn.open_exec(quote_argv(argv)))

    def workdir_path(self, *parts):
        return posixpath.join(self.workdir, *parts)

    def install_runner(self) -> str:
        local = write_runner(cache_root() / "runner")
        return self.store.push(local, runner_sha256(), kind="runner", name="runner.pyz").path

    def push_model(self, local_path: str, sha256: str, progress=None, extra_files=()):
        def report(done, total):
            if self.cancelled:
                raise KeyboardInterrupt  # the partial stays: the next push resumes it
            if progress:
                progress(done, total)
        if not extra_files:
            return self.store.push(Path(local_path), sha256, progress=report)
        return self.store.push_bundle(Path(local_path), tuple(Path(p) for p in extra_files), sha256, report)

    def run_runner(self, runner, mode, job, timeout_s, on_event):
        stream = EventStream(on_event)
        # through a shell that outlives the runner: sshd reports a signal death as an `exit-signal`
        # request, which paramiko drops (exit status -1); the shell turns it into 128 + signal
        channel = self.conn.open_exec(quote_argv(["sh", "-c", '"$@"; exit $?', "edgebench",
                                                  self.python, runner, mode]))
        deadline = time.monotonic() + timeout_s
        pid = None
        buffer = b""
        try:
            channel.sendall((json.dumps(job) if job is not None else "").encode())
            channel.shutdown_write()
            channel.settimeout(POLL_S)
            while True:
                if self.cancelled:
                    raise KeyboardInterrupt
                if time.monotonic() > deadline:
                    self._kill_runner(pid)
                    ended = stream.ended(None)
                    raise RunnerTimeout(f"runner exceeded the {timeout_s:g} s cell timeout and was killed",
                                        stderr_tail=ended.stderr_tail, cause=ended.cause)
                while channel.recv_stderr_ready():
                    stream.feed_stderr(channel.recv_stderr(65536).decode(errors="replace"))
                try:
                    data = channel.recv(65536)
                except socket.timeout:
                    if not self.conn.alive:
                        raise ConnectionLost(f"connection to {self.target.name} lost during the cell")
                    continue
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    event = line.decode(errors="replace")
                    stream.feed_line(event)
                    if pid is None and stream.hello:
                        pid = stream.hello.get("pid")
            while channel.recv_stderr_ready():
                stream.feed_stderr(channel.recv_stderr(65536).decode(errors="replace"))
            code = channel.recv_exit_status()
        except BaseException:
            self._kill_runner(pid)
            raise
        finally:
            channel.close()
        if code == -1 and not self.conn.alive:
            raise ConnectionLost(f"connection to {self.target.name} lost during the cell")
        signal_no = code - 128 if code > 128 else None
        return conclude(stream, stream.ended(code, signal=signal_no))

    def _kill_runner(self, pid) -> None:
        """Kill the runner's process group on the device (the runner leads its own group)."""
        if not pid or not self.conn.alive:
            return
        # the group when the runner leads one (it does so first thing), else the process alone.
        # No `--` before the negative pid: dash's kill refuses it, and it is the Debian/Pi sh.
        script = ('g="-$1"; kill -TERM "$g" 2>/dev/null || { g="$1"; kill -TERM "$g" 2>/dev/null; } || exit 0; '
                  'i=0; while kill -0 "$g" 2>/dev/null && [ $i -lt $2 ]; do sleep 1; i=$((i+1)); done; '
                  'kill -KILL "$g" 2>/dev/null; exit 0')
        try:
            self.conn.run("sh -c " + quote_argv([script, "edgebench", str(int(pid)), str(KILL_GRACE_S)]), timeout=30)
        except (TransportError, paramiko.SSHException, OSError):
            pass  # the device is gone: its runner dies on its next write to the closed channel

    def close(self) -> None:
        self.conn.close()


class _RemoteProcess(Spawned):
    def __init__(self, channel: paramiko.Channel):
        self.channel = channel
        self.buffer = b""

    def readline(self, timeout):
        while b"\n" not in self.buffer:
            self.channel.settimeout(timeout)
            try:
                data = self.channel.recv(4096)
            except socket.timeout:
                return None
            except (OSError, EOFError) as exc:
                raise ConnectionLost(f"connection lost: {exc}") from exc
            if not data:
                rest, self.buffer = self.buffer, b""
                return rest.decode(errors="replace")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace") + "\n"

    def close(self):
        try:
            self.channel.shutdown_write()
            self.channel.settimeout(KILL_GRACE_S)
            err = self.channel.makefile_stderr("rb").read().decode(errors="replace")
            self.channel.status_event.wait(KILL_GRACE_S)
            code = self.channel.exit_status if self.channel.exit_status_ready() else None
        except (OSError, EOFError, paramiko.SSHException):
            code, err = None, ""
        finally:
            self.channel.close()
        return code, err
