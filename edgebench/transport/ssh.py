"""A device over SSH: the same runner and protocol as `local`, only farther away."""

from __future__ import annotations

import posixpath
import shlex
import socket
from collections import deque
from typing import TYPE_CHECKING

from edgebench.errors import ConnectionLost, TransportError
from edgebench.transport.base import KILL_GRACE_S, SMALL_FILE_BYTES, Process, Transport
from edgebench.transport.declaration import WORD, TransportDeclaration, TransportSetting

if TYPE_CHECKING:
    import paramiko

    from edgebench.transport.sshconn import SshConnection, SshTarget

DECLARATION = TransportDeclaration(
    "ssh", "a device over SSH (paramiko; OpenSSH's client for bulk copies where it can)",
    settings=(
        TransportSetting("host", str, None, "the device's address", pattern=WORD),
        TransportSetting("port", int, 22, "sshd's port", between=(1, 65535)),
        TransportSetting("user", str, None, "the login; default: ~/.ssh/config's, else yours", pattern=WORD),
        TransportSetting("identity", str, None, "a private key file; default: ssh-agent and ~/.ssh/config"),
        TransportSetting("ssh_config_host", str, None, "a Host alias of ~/.ssh/config to read the rest from",
                         pattern=WORD),
        TransportSetting("proxy_jump", str, None, "a jump host, [user@]host[:port]", pattern=WORD),
    ),
    needs_one_of=("host", "ssh_config_host"), needs="`host` (or `ssh_config_host` naming a Host in ~/.ssh/config)",
    address=("host", "ssh_config_host"),
)

READ_BYTES = 65536
# exit 66 (EX_NOINPUT): no such file, as opposed to one that cannot be read
_READ = '[ -f "$1" ] || exit 66; exec head -c "$2" -- "$1"'
# the directory, then the file: written under a name of this shell's own, then renamed into place
_PUT = 'mkdir -p -- "$1" && cat > "$2.put-$$" && mv -f -- "$2.put-$$" "$2" || { rm -f -- "$2.put-$$"; exit 1; }'
# through a shell that outlives the command: sshd reports a signal death as an `exit-signal`
# request, which paramiko drops (exit status -1); the shell turns it into 128 + signal
_STATUS = '"$@"; exit $?'
# $1 a pid, $2 the grace in seconds: the group when the pid leads one (the runner does, first
# thing), else the process alone. No `--` before the negative pid: dash's kill refuses it, and it
# is the Debian/Pi sh.
_KILL = ('g="-$1"; kill -TERM "$g" 2>/dev/null || { g="$1"; kill -TERM "$g" 2>/dev/null; } || exit 0; '
         'i=0; while kill -0 "$g" 2>/dev/null && [ $i -lt $2 ]; do sleep 1; i=$((i+1)); done; '
         'kill -KILL "$g" 2>/dev/null; exit 0')


def _sh(script: str, *args) -> str:
    """A fixed script with its arguments quoted as data ($1, $2, ...)."""
    return "sh -c " + shlex.join([script, "edgebench", *map(str, args)])


class SshTransport(Transport):
    name = "ssh"

    def __init__(self, device):
        # paramiko loads here, not with the module: config reads DECLARATION without it
        from edgebench.transport.ssh_bulk import BulkSender
        from edgebench.transport.sshconn import SshConnection

        super().__init__(device)
        self.target = self._resolve(device)
        self.conn = SshConnection(self.target)
        self.python = self.helper_python = device.python or "python3"
        self.workdir = self._absolute(device.workdir)
        self.bulk = BulkSender(self.conn)

    def _resolve(self, device) -> SshTarget:
        """Where the device is: its profile, with ~/.ssh/config filling what it leaves unset."""
        from edgebench.transport.sshconn import resolve_target

        return resolve_target(device)

    def _absolute(self, path: str) -> str:
        """`~` means the device user's home, which only the device knows."""
        if path == "~" or path.startswith("~/"):
            home = self.conn.check("printf '%s' \"$HOME\"", "reading $HOME").strip()
            path = home + path[1:]
        return posixpath.normpath(path)

    def workdir_path(self, *parts):
        return posixpath.join(self.workdir, *parts)

    def start(self, argv):
        return _RemoteProcess(self.conn, self.conn.open_exec(_sh(_STATUS, *argv)))

    def read_file(self, path, limit=SMALL_FILE_BYTES):
        code, out, err = self.conn.run_bytes(_sh(_READ, path, str(limit)))
        if code == 66:
            return None
        if code != 0:
            raise TransportError(f"{self.target.name}: cannot read {path}: {err.decode(errors='replace').strip()}")
        return out

    def put_bytes(self, path, data):
        code, _, err = self.conn.run(_sh(_PUT, posixpath.dirname(path), path), stdin=data)
        if code != 0:
            raise TransportError(f"{self.target.name}: cannot write {path}: {err.strip()}")

    def pipe_file(self, argv, source, offset, progress=None):
        return self.bulk.send(shlex.join(map(str, argv)), source, offset, progress)

    def run_shell(self, command, timeout_s=120):
        return self.conn.run(command, timeout=timeout_s)

    def close(self) -> None:
        self.conn.close()


class _RemoteProcess(Process):
    def __init__(self, conn: SshConnection, channel: paramiko.Channel):
        self.conn, self.channel = conn, channel
        self.pieces: deque = deque()

    def send(self, data):
        try:
            self.channel.sendall(data)
        except (OSError, EOFError):
            pass  # it has gone; how it ended says why

    def close_stdin(self):
        try:
            self.channel.shutdown_write()
        except (OSError, EOFError):
            pass

    def receive(self, timeout):
        if not self.pieces:
            self._read(timeout)
        return self.pieces.popleft() if self.pieces else None

    def _read(self, timeout: float) -> None:
        channel = self.channel
        if channel.recv_stderr_ready():
            self.pieces.append(("err", channel.recv_stderr(READ_BYTES)))
            return
        channel.settimeout(timeout)
        try:
            data = channel.recv(READ_BYTES)
        except socket.timeout:
            if not self.conn.alive:
                raise ConnectionLost(f"connection to {self.conn.target.name} lost")
            return
        except (OSError, EOFError) as exc:
            raise ConnectionLost(f"connection to {self.conn.target.name} lost: {exc}") from exc
        if data:
            self.pieces.append(("out", data))
            return
        # the channel's end is both streams' end; stderr may still hold what came before it
        while channel.recv_stderr_ready():
            self.pieces.append(("err", channel.recv_stderr(READ_BYTES)))
        self.pieces.extend((("out", b""), ("err", b"")))

    def wait(self, timeout=None):
        if not self.channel.status_event.wait(timeout):
            return None
        code = self.channel.recv_exit_status()
        if code == -1 and not self.conn.alive:
            raise ConnectionLost(f"connection to {self.conn.target.name} lost")
        return code, (code - 128 if code > 128 else None)

    def kill(self, group=None):
        """Without a device pid, closing the channel is what stops it: the process reads EOF, or
        dies writing to the closed channel."""
        import paramiko

        if group and self.conn.alive and not self.channel.exit_status_ready():
            try:
                self.conn.run(_sh(_KILL, str(int(group)), str(int(KILL_GRACE_S))), timeout=30)
            except (TransportError, paramiko.SSHException, OSError):
                pass  # the device is gone: the process dies on its next write to the closed channel
        self.channel.close()

    def close(self):
        self.channel.close()


TRANSPORT = SshTransport
