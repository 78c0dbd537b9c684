"""One SSH connection to a device, with paramiko kept behind this edge.

Settings come from the device profile, falling back to an `~/.ssh/config`
alias. Authentication is by key or ssh-agent only. Host keys are checked
against edgebench's known_hosts plus the user's, and anything unknown or
changed is refused. paramiko and socket errors leave this module as
edgebench errors.

Bulk bytes may instead go through OpenSSH's own client (`ssh_process`), pinned
to the same known_hosts entries, while paramiko keeps the control connection.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import paramiko

from edgebench.errors import ConnectionLost, HostKeyError, TransportError, Unreachable
from edgebench.transport import hostkeys

CONNECT_TIMEOUT_S = 15
KEEPALIVE_S = 15
ACTIVE_CHECK_S = 1.0
# a large window keeps a fast link busy while acknowledgements travel
WINDOW_BYTES = 64 << 20
# AES-GCM runs on AES-NI/ARMv8 crypto units; the faster cipher where both ends have them
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
SSH_BINARY = "ssh"
# `^` puts GCM ahead of OpenSSH's default list instead of replacing it, so a server without GCM
# still negotiates something (one connection attempt, no retry needed)
BULK_CIPHERS = "^" + ",".join(PREFERRED_CIPHERS)
# the name the pinned known_hosts file lists the device's keys under: ssh looks the key up by
# this alias, so how the host and port are spelled cannot make it miss (or hit another entry)
HOST_KEY_ALIAS = "edgebench-device"

# paramiko logs each failed handshake with a traceback at ERROR level, which Python's last-resort
# handler prints to stderr before edgebench's own sentence; what went wrong reaches the user as that
# sentence, so paramiko's log stays quiet
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class SshTarget:
    name: str
    host: str
    port: int
    user: str
    identities: tuple[str, ...]
    proxy_jump: str | None
    # a command whose stdin/stdout is the device's SSH port (labgrid's tunnel through a lab host)
    proxy_command: str | None = None


def _ssh_config() -> paramiko.SSHConfig:
    path = Path.home() / ".ssh" / "config"
    if path.is_file():
        try:
            return paramiko.SSHConfig.from_path(str(path))
        except Exception as exc:  # paramiko raises several types for a bad config
            raise TransportError(f"cannot parse {path}: {exc}") from exc
    return paramiko.SSHConfig()


def resolve_target(device) -> SshTarget:
    """Profile values win; unset ones come from the ~/.ssh/config entry for the alias or host."""
    alias = device.ssh_config_host or device.host
    options = _ssh_config().lookup(alias)
    port = device.port if device.port != 22 else int(options.get("port", 22))
    identities = (device.identity,) if device.identity else tuple(options.get("identityfile", ()))
    return SshTarget(
        name=device.name,
        host=device.host or options.get("hostname", alias),
        port=port,
        user=device.user or options.get("user") or getpass.getuser(),
        identities=tuple(str(Path(p).expanduser()) for p in identities),
        proxy_jump=device.proxy_jump or options.get("proxyjump"),
    )


def parse_jump(spec: str, device_name: str, identities: tuple[str, ...] = ()) -> SshTarget:
    """`[user@]host[:port]` or an ~/.ssh/config alias; only the first hop of a chain is followed.
    Without an IdentityFile of its own, the jump host is tried with the device's key."""
    first = spec.split(",")[0].strip()
    user, _, hostport = first.rpartition("@")
    host, _, port = hostport.partition(":")
    options = _ssh_config().lookup(host)
    return SshTarget(
        name=f"{device_name} (jump host {first})",
        host=options.get("hostname", host),
        port=int(port or options.get("port", 22)),
        user=user or options.get("user") or getpass.getuser(),
        identities=tuple(str(Path(p).expanduser()) for p in options.get("identityfile", ())) or identities,
        proxy_jump=None,
    )


def _reason(exc: BaseException, port: int) -> str:
    """paramiko's words, with what they mean where they are obscure."""
    if isinstance(exc, paramiko.SSHException) and "protocol banner" in str(exc):
        return f"something answers on port {port}, but it is not an SSH server (no SSH banner)"
    return str(exc)


class _RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, target: SshTarget):
        self.target = target

    def missing_host_key(self, client, hostname, key):
        hostkeys.check_presented_key(self.target.host, self.target.port, key, self.target.name)


def _transport_factory(sock, gss_kex=False, gss_deleg_creds=False, disabled_algorithms=None):
    transport = paramiko.Transport(sock, default_window_size=WINDOW_BYTES, disabled_algorithms=disabled_algorithms)
    # its thread wakes this often to see whether it was closed: paramiko's 0.1 s made 256 devices 2,560
    # wake-ups a second of the controller's CPU. A close is still noticed (the thread ends within this
    # long, in the background); keepalives still go out every KEEPALIVE_S
    transport._active_check_timeout = ACTIVE_CHECK_S
    transport.sock.settimeout(ACTIVE_CHECK_S)
    options = transport.get_security_options()
    preferred = [c for c in PREFERRED_CIPHERS if c in options.ciphers]
    options.ciphers = tuple(preferred + [c for c in options.ciphers if c not in preferred])
    return transport


def open_client(target: SshTarget, sock=None) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    # only this device's entry: paramiko looks the key up under it, and adding every entry of a
    # known_hosts of hundreds costs each connection a quadratic walk
    entry = hostkeys.host_entry(target.host, target.port)
    for key_type, key in hostkeys.recorded_keys(target.host, target.port).items():
        client.get_host_keys().add(entry, key_type, key)
    client.set_missing_host_key_policy(_RefuseUnknown(target))
    where = f"{target.user}@{hostkeys.host_entry(target.host, target.port)}"
    try:
        client.connect(
            target.host, port=target.port, username=target.user, key_filename=list(target.identities) or None,
            allow_agent=True, look_for_keys=True, timeout=CONNECT_TIMEOUT_S, banner_timeout=CONNECT_TIMEOUT_S,
            auth_timeout=CONNECT_TIMEOUT_S, channel_timeout=CONNECT_TIMEOUT_S, sock=sock,
            transport_factory=_transport_factory,
        )
    except HostKeyError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        hostkeys.check_presented_key(target.host, target.port, exc.key, target.name)
        raise HostKeyError(str(exc)) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        raise TransportError(
            f"authentication failed for {where} (device {target.name}): {exc}. edgebench logs in with keys "
            f"only: set `identity:` in the device profile, an IdentityFile in ~/.ssh/config, or load the key "
            f"into ssh-agent") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        client.close()
        raise Unreachable(f"cannot reach device {target.name} at {where}: {_reason(exc, target.port)}") from exc
    client.get_transport().set_keepalive(KEEPALIVE_S)
    return client


class SshConnection:
    """A connected device: run quoted commands, stream their output, open sftp."""

    def __init__(self, target: SshTarget):
        self.target = target
        self._jump = None
        sock = None
        if target.proxy_jump:
            self._jump = open_client(parse_jump(target.proxy_jump, target.name, target.identities))
            try:
                sock = self._jump.get_transport().open_channel(
                    "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT_S)
            except (paramiko.SSHException, OSError) as exc:
                self._jump.close()
                raise Unreachable(f"jump host {target.proxy_jump} cannot reach {target.host}:{target.port}: "
                                     f"{exc}") from exc
        elif target.proxy_command:
            try:
                sock = paramiko.ProxyCommand(target.proxy_command)
            except paramiko.SSHException as exc:
                raise Unreachable(f"cannot start the tunnel to {target.name} ({target.proxy_command}): {exc}") from exc
        self.client = open_client(target, sock=sock)

    @property
    def alive(self) -> bool:
        transport = self.client.get_transport()
        return bool(transport and transport.is_active())

    def open_exec(self, command: str) -> paramiko.Channel:
        try:
            channel = self.client.get_transport().open_session(window_size=WINDOW_BYTES)
            channel.exec_command(command)
            return channel
        except (paramiko.SSHException, OSError, EOFError, AttributeError) as exc:
            raise ConnectionLost(f"connection to {self.target.name} lost: {exc}") from exc

    def run(self, command: str, stdin: bytes = b"", timeout: float = 120) -> tuple[int, str, str]:
        """Run a shell command to completion; return (exit code, stdout, stderr)."""
        code, out, err = self.run_bytes(command, stdin, timeout)
        return code, out.decode(errors="replace"), err.decode(errors="replace")

    def run_bytes(self, command: str, stdin: bytes = b"", timeout: float = 120) -> tuple[int, bytes, bytes]:
        """`run`, with stdout and stderr as the bytes they were."""
        channel = self.open_exec(command)
        channel.settimeout(timeout)
        try:
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out = channel.makefile("rb").read()
            err = channel.makefile_stderr("rb").read()
            code = channel.recv_exit_status()
        except (socket.timeout, TimeoutError) as exc:
            raise ConnectionLost(f"{self.target.name}: command timed out after {timeout:g} s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise ConnectionLost(f"connection to {self.target.name} lost: {exc}") from exc
        finally:
            channel.close()
        if code == -1 and not self.alive:
            raise ConnectionLost(f"connection to {self.target.name} lost")
        return code, out, err

    def check(self, command: str, what: str, **kwargs) -> str:
        code, out, err = self.run(command, **kwargs)
        if code != 0:
            raise TransportError(f"{self.target.name}: {what} failed (exit {code}): {err.strip() or out.strip()}")
        return out

    @contextlib.contextmanager
    def ssh_process(self, command: str, **popen):
        """OpenSSH's `ssh` running `command` on the device, or None where it cannot stand in for
        paramiko: no binary; a ProxyJump, whose hop would need a trust decision of its own; a
        proxy command (paramiko already runs one); no recorded key. It accepts only the keys
        recorded for this device in the known_hosts data paramiko checked (StrictHostKeyChecking=yes,
        BatchMode=yes, no config file)."""
        binary = shutil.which(SSH_BINARY)
        keys = hostkeys.recorded_keys(self.target.host, self.target.port)
        if not binary or self.target.proxy_jump or self.target.proxy_command or not keys:
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="edgebench-ssh-") as tmp:
            known = Path(tmp) / "known_hosts"
            argv = self._ssh_argv(binary, known, command)
            if argv is None:
                yield None
                return
            known.write_text("".join(f"{HOST_KEY_ALIAS} {key.get_name()} {key.get_base64()}\n"
                                     for key in keys.values()))
            proc = subprocess.Popen(argv, **popen)
            try:
                yield proc
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()

    def _ssh_argv(self, binary: str, known_hosts: Path, command: str) -> list[str] | None:
        """None when a path cannot be written as an ssh_config value (those expand %-tokens and
        ${VAR} and have no escape for a double quote)."""
        t = self.target
        paths = [str(known_hosts), *t.identities]
        if any('"' in p or "${" in p for p in paths):
            return None
        known, *identities = ('"' + p.replace("%", "%%") + '"' for p in paths)
        argv = [binary, "-F", "/dev/null", "-T", "-x", "-a", "-p", str(t.port), "-l", t.user,
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"HostKeyAlias={HOST_KEY_ALIAS}",
                "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "CheckHostIP=no", "-o", "UpdateHostKeys=no", "-o", "ClearAllForwardings=yes",
                "-o", "PermitLocalCommand=no", "-o", f"Ciphers={BULK_CIPHERS}", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                # a device that vanishes mid-upload ends ssh instead of leaving it waiting forever
                "-o", f"ServerAliveInterval={KEEPALIVE_S}", "-o", "ServerAliveCountMax=4"]
        for identity in identities:
            argv += ["-o", f"IdentityFile={identity}"]
        return argv + ["--", t.host, command]

    def close(self) -> None:
        self.client.close()
        if self._jump:
            self._jump.close()


def refused_host_key(ssh_stderr: str) -> bool:
    """Whether OpenSSH's client stopped at host-key verification (unknown or changed key)."""
    return "Host key verification failed" in ssh_stderr or "IDENTIFICATION HAS CHANGED" in ssh_stderr


def quote_argv(argv) -> str:
    """Every remote argument quoted: profile values never reach a shell unquoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def fetch_host_key(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S, sock=None) -> paramiko.PKey:
    """The key a server presents, without authenticating (for `devices trust`)."""
    if sock is None:
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise TransportError(f"cannot reach {host}:{port}: {exc}") from exc
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise TransportError(f"{host}:{port} did not complete an SSH handshake: {_reason(exc, port)}") from exc
    finally:
        transport.close()
