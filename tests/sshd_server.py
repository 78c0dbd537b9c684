"""A real OpenSSH ``sshd`` on a loopback port, for tests that talk SSH to a "device".

The project's rule is that SSH code is tested against the real thing: no paramiko
server, no mocks. :class:`SshServer` generates its own ed25519 host and client keys,
writes a self-contained ``sshd_config`` under a test's directory, runs ``sshd -D`` as
a child of the test process and stops it afterwards. Several instances stand in for a
fleet. It also offers the failure modes transport tests need: dropping live
connections (:meth:`SshServer.kill_connections`), changing the host key
(:meth:`SshServer.restart_with_new_host_key`), and a view of the processes remote
commands left behind (:meth:`SshServer.children`).

This is a helper, not a test module; the pytest fixtures live in ``sshd_fixtures.py``.
Linux only: process trees are read from ``/proc``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

HOST = "127.0.0.1"

# Names sshd's own processes run under: the listener and its per-connection monitor are
# "sshd"; OpenSSH 9.8+ execs "sshd-session" per connection and 10.0+ adds "sshd-auth".
SSHD_PROCESS_NAMES = frozenset({"sshd", "sshd-session", "sshd-auth"})

# useradd's comment for accounts this module creates, so a later run knows it may unlock them.
CREATED_USER_COMMENT = "edgebench test login (tests/sshd_server.py)"

_POLL = 0.02  # seconds between polls in the wait loops below; every loop also has a deadline


class SshServerError(RuntimeError):
    """sshd could not be set up or started; the message carries the log's tail."""


def find_sshd() -> str | None:
    """Absolute path of sshd, or None. sshd re-execs itself per connection and refuses
    to start from a relative path; non-root PATHs often lack /usr/sbin, hence the fallback."""
    found = shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None)
    return os.path.abspath(found) if found else None


def free_port() -> int:
    """A loopback port nobody listens on right now (another process may still take it
    before sshd binds; :meth:`SshServer.start` retries with a new port if that happens)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def current_user() -> str:
    # From the uid rather than getpass.getuser(): LOGNAME/USER can be stale (su, containers),
    # and sshd only lets a non-root sshd log in as the uid it runs under.
    return pwd.getpwuid(os.geteuid()).pw_name


def cmdline(pid: int) -> list[str]:
    """argv of a process, or [] if it is gone (or a zombie)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (ppid, comm, state) for every live process, read from /proc/*/stat.

    Scanning stat works on every kernel; /proc/<pid>/task/*/children needs
    CONFIG_PROC_CHILDREN and only lists children of each thread."""
    table: dict[int, tuple[int, str, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            data = Path(entry.path, "stat").read_text()
        except OSError:  # exited between scandir and read
            continue
        # comm is in parentheses and may itself contain spaces or ')': split at the last ')'.
        head, _, rest = data.rpartition(")")
        comm = head.partition("(")[2]
        fields = rest.split()
        state, ppid = fields[0], int(fields[1])
        table[int(entry.name)] = (ppid, comm, state)
    return table


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, comm) of every live, non-zombie descendant of root, parents before children.

    Zombies are left out: they run nothing, and orphans re-parented to a pid 1 that does
    not reap (as in some containers) would otherwise linger in the results."""
    table = _process_table()
    by_parent: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        by_parent.setdefault(ppid, []).append(pid)
    result: list[tuple[int, str]] = []
    queue = list(by_parent.get(root, []))
    while queue:
        pid = queue.pop(0)
        queue.extend(by_parent.get(pid, []))
        _, comm, state = table[pid]
        if state != "Z":
            result.append((pid, comm))
    return result


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll until condition() is truthy and return that value; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)


def _quote(path: Path) -> str:
    """A path as an sshd_config value: quoted for spaces; '%' doubled because
    AuthorizedKeysFile expands %-tokens and a literal '%' must be written '%%'."""
    text = str(path)
    if '"' in text or "\n" in text:
        raise SshServerError(f"sshd_config cannot express the path {text!r}")
    return '"' + text.replace("%", "%%") + '"'


def _run(argv: Sequence[str], what: str) -> str:
    proc = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SshServerError(f"{what} failed ({' '.join(argv)}): exit {proc.returncode}\n"
                             f"{proc.stdout}{proc.stderr}")
    return proc.stdout


def _keygen(path: Path, comment: str) -> None:
    # ssh-keygen asks before overwriting and would hang on a closed stdin: remove first.
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], "ssh-keygen")


@functools.lru_cache(maxsize=None)
def _sshd_version(sshd: str) -> tuple[int, int]:
    # `sshd -V` exists from 9.x on; older ones print the version in their usage message instead.
    proc = subprocess.run([sshd, "-V"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", proc.stdout + proc.stderr)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _die_with_parent() -> None:
    # If the test process dies hard (SIGKILL, OOM), take sshd with it instead of leaving a
    # listener on a loopback port. The death signal follows the *thread* that forked, so
    # start servers from the main thread (pytest fixtures do).
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class SshServer:
    """One OpenSSH sshd on ``127.0.0.1:<port>`` that accepts :attr:`client_key` for :attr:`user`.

    Everything it writes lives under ``base_dir``: keys, ``sshd_config``, pid file, the
    authorized keys, ``sshd.log`` and :attr:`device_dir`. Construction generates keys and
    the config; :meth:`start` launches sshd and returns once it sends its SSH banner.

    ``user`` defaults to the user the tests run as. Another user is only possible when
    running as root (sshd cannot switch uid otherwise); it is created with ``useradd -m``
    if missing and is left in place afterwards, so later tests and runs reuse it.
    """

    host = HOST

    def __init__(self, base_dir: Path, *, user: str | None = None, port: int | None = None,
                 sshd_path: str | None = None, start_timeout: float = 15.0, own_home: bool = False) -> None:
        self.base_dir = Path(base_dir).resolve()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.user = user or current_user()
        self.start_timeout = start_timeout
        sshd = sshd_path or find_sshd()
        if not sshd:
            raise SshServerError("sshd not found (Debian: apt-get install openssh-server)")
        self.sshd_path = sshd
        # A caller-chosen port is kept even if busy (start fails, which is what such a test
        # wants); a port we picked may be re-picked until the first successful start.
        self._port_pinned = port is not None
        self._port = port if port is not None else free_port()
        self._proc: subprocess.Popen | None = None
        self._log_handle = None

        self.config_file = self.base_dir / "sshd_config"
        self.host_key_file = self.base_dir / "ssh_host_ed25519_key"
        self.client_key_file = self.base_dir / "id_ed25519"
        self.authorized_keys_file = self.base_dir / "authorized_keys"
        self.pid_file = self.base_dir / "sshd.pid"
        self.log_file = self.base_dir / "sshd.log"
        self.device_dir = self.base_dir / "device"
        # sessions get HOME=device_dir: many simulated devices on one account, each with its own ~
        # (so its own ~/.cache/edgebench), as separate boards would have
        self.own_home = own_home

        self._prepare_login_user()
        _keygen(self.host_key_file, f"edgebench-test-host@{HOST}")
        _keygen(self.client_key_file, "edgebench-test-client")
        self.authorized_keys_file.write_text(self.client_key_file.with_suffix(".pub").read_text())
        self.authorized_keys_file.chmod(0o644)  # sshd reads it as the login user
        self._write_config()

    # -- properties ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def client_key(self) -> Path:
        """Private key that logs in as :attr:`user` (no passphrase)."""
        return self.client_key_file

    @property
    def host_public_key(self) -> str:
        """The host key as ``ssh-ed25519 AAAA...`` (no comment)."""
        kind, blob = self.host_key_file.with_name(self.host_key_file.name + ".pub").read_text().split()[:2]
        return f"{kind} {blob}"

    @property
    def host_key_fingerprint(self) -> str:
        """``SHA256:...`` exactly as ``ssh-keygen -lf`` prints it (and as ssh shows it)."""
        out = _run(["ssh-keygen", "-lf", str(self.host_key_file) + ".pub"], "ssh-keygen -lf")
        return out.split()[1]

    @property
    def pid(self) -> int | None:
        """pid of the listening sshd, None when stopped."""
        return self._proc.pid if self.running else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def known_hosts_line(self) -> str:
        """A known_hosts entry for this server; ssh writes non-22 ports as ``[host]:port``."""
        return f"[{HOST}]:{self.port} {self.host_public_key}"

    def known_hosts_file(self) -> Path:
        """A known_hosts file holding just :meth:`known_hosts_line` (rewritten on each call,
        so it follows a host key change)."""
        path = self.base_dir / "known_hosts"
        path.write_text(self.known_hosts_line() + "\n")
        return path

    def ssh_argv(self, command: str, *, known_hosts: Path | None = None,
                 options: Sequence[str] = ()) -> list[str]:
        """argv for the system ssh client running ``command`` here, with strict host key
        checking against ``known_hosts`` (default: :meth:`known_hosts_file`).

        User and system ssh configuration, agents and other identities are kept out so the
        result depends only on this server and its keys."""
        known = known_hosts if known_hosts is not None else self.known_hosts_file()
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.client_key), "-p", str(self.port),
            "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
            *options, f"{self.user}@{HOST}", command,
        ]

    def log_tail(self, n: int = 40) -> str:
        """Last n lines of sshd's log (all starts of this server, appended)."""
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no sshd log yet)"
        return "\n".join(lines[-n:])

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> SshServer:
        """Launch sshd and return once it has sent an ``SSH-2.0-`` banner on its port."""
        if self.running:
            return self
        for attempt in range(3):
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            try:
                self._launch()
                self._wait_ready(log_offset)
                break
            except SshServerError:
                new_output = self._log_since(log_offset)
                self.stop()
                if not self._port_pinned and "Address already in use" in new_output and attempt < 2:
                    # Lost the race between free_port() and sshd's bind: take another port.
                    self._port = free_port()
                    self._write_config()
                    continue
                raise
        self._port_pinned = True  # known_hosts lines now name this port; keep it across restarts
        return self

    def stop(self) -> None:
        """Drop all connections, stop the listener and wait for it. Safe to call twice."""
        if self._proc is not None:
            if self._proc.poll() is None:
                # The listener exiting does not end established sessions; kill them first
                # so nothing a test started outlives it.
                try:
                    self.kill_connections()
                finally:
                    self._proc.terminate()
                    try:
                        self._proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        self._proc.kill()
                        self._proc.wait(timeout=10)
            self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def restart_with_new_host_key(self) -> None:
        """Stop, generate a fresh host key, start again on the same port: clients holding
        the old :meth:`known_hosts_line` must now refuse to connect."""
        self.stop()
        self._port_pinned = True
        _keygen(self.host_key_file, f"edgebench-test-host@{HOST}")
        self.start()

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SshServer {self.user}@{HOST}:{self.port} {state} in {self.base_dir}>"

    # -- processes ----------------------------------------------------------------------

    def children(self, *, include_sshd: bool = True) -> list[int]:
        """pids of live processes descending from the listener: sshd's per-connection
        processes and everything remote commands started under them.

        With ``include_sshd=False`` only the latter (the shells and commands a client ran),
        which is what "nothing left running on the device" means while a connection is
        still open. Processes that daemonized away (double fork, setsid + re-parent) are
        not descendants any more and are not seen."""
        if not self.running:
            return []
        return [pid for pid, comm in _descendants(self._proc.pid)
                if include_sshd or comm not in SSHD_PROCESS_NAMES]

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no process descends from the listener; sshd needs a moment after a
        client disconnects to wind down its per-connection processes."""
        if not _wait_until(lambda: not self.children(), timeout):
            left = "\n".join(f"  {pid}: {' '.join(cmdline(pid))}" for pid in self.children())
            raise TimeoutError(f"processes still running under sshd :{self.port} after {timeout}s:\n{left}")

    def kill_connections(self, *, keep_commands: bool = False, timeout: float = 10.0) -> list[int]:
        """SIGKILL every connection's processes; the listener stays up so a retry can reconnect.

        Simulates a connection dropped mid-transfer: clients see the TCP stream end without
        an SSH disconnect. By default remote commands die too. With ``keep_commands=True``
        only sshd's own processes are killed and commands keep running, orphaned, the way a
        runner may survive a network drop (they are no longer :meth:`children` then, so
        note their pids beforehand). Returns the pids killed, after they are gone."""
        if not self.running:
            return []
        master = self._proc.pid
        # Stop the whole tree before killing so no connection can fork a process that
        # escapes between the scan and the kill; repeat until a scan finds nothing new.
        frozen: dict[int, str] = {}
        while True:
            fresh = [(pid, comm) for pid, comm in _descendants(master) if pid not in frozen]
            if not fresh:
                break
            for pid, comm in fresh:
                if _signal(pid, signal.SIGSTOP):
                    frozen[pid] = comm
        victims = [pid for pid, comm in frozen.items() if not keep_commands or comm in SSHD_PROCESS_NAMES]
        for pid in victims:
            _signal(pid, signal.SIGKILL)
        for pid in frozen.keys() - set(victims):
            _signal(pid, signal.SIGCONT)
        if not _wait_until(lambda: not any(_alive(pid) for pid in victims), timeout):
            raise TimeoutError(f"killed processes of sshd :{self.port} still alive after {timeout}s")
        return victims

    # -- internals ----------------------------------------------------------------------

    def _prepare_login_user(self) -> None:
        me = current_user()
        if self.user == me:
            self.device_dir.mkdir(exist_ok=True)
            return
        if os.geteuid() != 0:
            raise SshServerError(
                f"logging in as {self.user!r} needs sshd to run as root, but the tests run as {me!r}; "
                f"use user=None (log in as {me!r}) or run the tests as root")
        try:
            pw = pwd.getpwnam(self.user)
        except KeyError:
            shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
            proc = subprocess.run(["useradd", "-m", "-s", shell, "-c", CREATED_USER_COMMENT, self.user],
                                  capture_output=True, text=True, stdin=subprocess.DEVNULL)
            # 9: created meanwhile by a parallel test (pytest-xdist); fine.
            if proc.returncode not in (0, 9):
                raise SshServerError(f"useradd {self.user} failed: {proc.stderr.strip()}")
            pw = pwd.getpwnam(self.user)
        self._ensure_unlocked(pw)
        # sshd reads authorized_keys with the login user's uid, so every directory above it
        # must be traversable for that user. pytest's temp root is 0700: add o+x (search,
        # not listing) to the ancestors that lack it. pytest re-tightens its root next run.
        for directory in [self.base_dir, *self.base_dir.parents]:
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        self.device_dir.mkdir(exist_ok=True)
        os.chown(self.device_dir, pw.pw_uid, pw.pw_gid)

    def _ensure_unlocked(self, pw: pwd.struct_passwd) -> None:
        # With UsePAM no, sshd refuses an account whose password field starts with '!'
        # ("account is locked") even for key logins, and useradd creates it that way. '*'
        # means "no password, not locked". Only accounts this module created are changed.
        try:
            shadow = Path("/etc/shadow").read_text().splitlines()
        except OSError:
            return
        entry = next((line.split(":") for line in shadow if line.split(":", 1)[0] == self.user), None)
        if entry is None or not entry[1].startswith("!"):
            return
        if pw.pw_gecos != CREATED_USER_COMMENT:
            raise SshServerError(
                f"user {self.user!r} is locked (password field starts with '!'), so sshd with UsePAM no "
                f"refuses key logins for it; unlock it (usermod -p '*' {self.user}) or use another user")
        _run(["usermod", "-p", "*", self.user], "usermod")

    def _write_config(self) -> None:
        lines = [
            "# Written by tests/sshd_server.py for one test server; regenerated on each start.",
            f"ListenAddress {HOST}",
            f"Port {self._port}",
            f"HostKey {_quote(self.host_key_file)}",
            f"PidFile {_quote(self.pid_file)}",
            # One absolute file, not ~/.ssh: the tests' key must not touch real accounts.
            f"AuthorizedKeysFile {_quote(self.authorized_keys_file)}",
            # StrictModes wants authorized_keys and every directory above it owned by the user
            # or root and not group/world-writable; temp dirs rarely qualify.
            "StrictModes no",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # Without PAM there is no pam_nologin/pam_limits surprise and no PAM stack to
            # configure; the flip side is the '!'-locked account check (_ensure_unlocked).
            "UsePAM no",
            "PermitRootLogin prohibit-password",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            # Transport tests open many connections and channels at once (fleet, parallel
            # uploads); the defaults (10 unauthenticated, 10 sessions) would drop some.
            "MaxStartups 200",
            "MaxSessions 200",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
        ]
        if self.own_home:
            self.device_dir.mkdir(exist_ok=True)
            lines.append(f'SetEnv "HOME={self.device_dir}"')
        if _sshd_version(self.sshd_path) >= (9, 8):
            # 9.8+ penalises a source address whose connections crash or fail auth by
            # refusing it for a while; kill_connections and the refusal tests would trip it
            # for 127.0.0.1 and break the next test.
            lines.append("PerSourcePenalties no")
        self.config_file.write_text("\n".join(lines) + "\n")

    def _launch(self) -> None:
        if os.geteuid() == 0:
            # Privilege separation chroots the pre-auth child into /run/sshd; a fresh
            # container has no /run/sshd until the sshd service runs once.
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self._log_handle = open(self.log_file, "ab")
        self._proc = subprocess.Popen(
            # -D: stay in the foreground as our child; -e: log to stderr (our log file).
            [self.sshd_path, "-D", "-e", "-f", str(self.config_file)],
            stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )

    def _wait_ready(self, log_offset: int) -> None:
        deadline = time.monotonic() + self.start_timeout
        # sshd logs this line once its socket is bound; waiting for it, and not only for a
        # banner, keeps us from mistaking someone else's server on a reused port for ours.
        listening = f"Server listening on {HOST} port {self._port}."
        banner = b""
        while True:
            if self._proc.poll() is not None:
                raise SshServerError(f"sshd on port {self._port} exited with {self._proc.returncode}:\n"
                                     f"{self.log_tail()}")
            if listening in self._log_since(log_offset):
                # Short reads so a dead sshd is noticed by the poll() above, not after a timeout.
                banner = _read_banner(self._port, min(deadline, time.monotonic() + 1.0))
                if banner.startswith(b"SSH-2.0-"):
                    break
            if time.monotonic() >= deadline:
                raise SshServerError(f"sshd on port {self._port} did not come up within {self.start_timeout}s "
                                     f"(banner read: {banner!r}):\n{self.log_tail()}")
            time.sleep(_POLL)
        # The probe connection has a per-connection process of its own; let it go so tests
        # that count processes start from an idle server.
        try:
            self.wait_idle(timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError as e:
            raise SshServerError(f"{e}\n{self.log_tail()}")

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _read_banner(port: int, deadline: float) -> bytes:
    """The first line the server sends, b"" if it does not (yet) accept or answer."""
    try:
        with socket.create_connection((HOST, port), timeout=max(0.1, deadline - time.monotonic())) as s:
            data = b""
            while b"\n" not in data and time.monotonic() < deadline:
                s.settimeout(max(0.1, deadline - time.monotonic()))
                chunk = s.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.split(b"\n", 1)[0].rstrip(b"\r")
    except OSError:
        return b""
