"""pytest plugin: real OpenSSH servers (and a small filesystem) for the SSH tests.

Registered from tests/conftest.py with ``pytest_plugins = ["sshd_fixtures"]``; the module
is found because pytest puts tests/ (a rootdir without __init__.py) on sys.path before
importing that conftest.

On CI (CI=1/true/yes) a missing part (sshd, root for a second login user, the right to
mount) fails the test that needs it; elsewhere it skips with the reason, like the rest of
the suite (see tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from missing_parts import missing
from sshd_server import SshServer, find_sshd

# Size of the small_tmpfs filesystem: room for a few small files, far too small for a model.
SMALL_TMPFS_BYTES = 16 * 1024 * 1024

_SERVERS = pytest.StashKey[list]()


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        missing(f"root ({why})")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # A failing SSH test is mostly explained by sshd's side ("Authentication refused",
    # "Connection reset"): attach each server's log to the failure report.
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in item.stash.get(_SERVERS, []):
            report.sections.append((f"sshd log {server.user}@{server.host}:{server.port}", server.log_tail(60)))


@pytest.fixture(scope="session")
def sshd_binary() -> str:
    path = find_sshd()
    if path is None:
        missing("OpenSSH sshd (apt-get install openssh-server)")
    return path


def _track(request, server: SshServer) -> None:
    request.node.stash.setdefault(_SERVERS, []).append(server)


@pytest.fixture
def sshd(sshd_binary, tmp_path, request) -> Iterator[SshServer]:
    """A started SshServer logging in as the current user; stopped after the test."""
    server = SshServer(tmp_path / "sshd", sshd_path=sshd_binary)
    _track(request, server)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sshd_factory(sshd_binary, tmp_path, request) -> Iterator[Callable[..., list[SshServer]]]:
    """``sshd_factory(count=1, *, user=None) -> [SshServer, ...]``: that many more started
    servers, each with its own port and keys (a fleet); all stopped after the test.

    ``user`` other than the current one needs root (the user is created if missing)."""
    servers: list[SshServer] = []

    def make(count: int = 1, *, user: str | None = None) -> list[SshServer]:
        if user is not None:
            require_root(f"sshd logging in as {user!r}")
        made = []
        for _ in range(count):
            server = SshServer(tmp_path / f"sshd-{len(servers)}", user=user, sshd_path=sshd_binary)
            servers.append(server)
            _track(request, server)
            made.append(server.start())
        return made

    try:
        yield make
    finally:
        errors = []
        for server in servers:
            try:
                server.stop()
            except Exception as e:  # stop the others anyway, then report
                errors.append(f"{server}: {e!r}")
        if errors:
            raise RuntimeError("stopping sshd servers failed:\n" + "\n".join(errors))


@pytest.fixture
def small_tmpfs(tmp_path) -> Iterator[Path]:
    """A directory on its own 16 MiB tmpfs (world-writable, sticky): a device disk that
    fills up. Writing past SMALL_TMPFS_BYTES fails with ENOSPC, as a full SD card would."""
    require_root("mounting a tmpfs")
    mountpoint = Path(tempfile.mkdtemp(prefix="small-tmpfs-", dir=tmp_path))
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_TMPFS_BYTES},mode=1777", "edgebench-small", str(mountpoint)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        # Containers without CAP_SYS_ADMIN land here.
        missing(f"permission to mount a tmpfs ({proc.stderr.strip()})")
    try:
        yield mountpoint
    finally:
        # A process a test left running on the mount keeps it busy; detach it lazily then
        # rather than leaving a mount behind under pytest's temp dir.
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True, capture_output=True)


@pytest.fixture
def private_known_hosts(tmp_path, monkeypatch) -> Path:
    """Trust decisions of one test never leak into another, nor into the user's files; no agent."""
    from edgebench.transport import hostkeys

    path = tmp_path / "edgebench_known_hosts"
    monkeypatch.setenv("EDGEBENCH_KNOWN_HOSTS", str(path))
    monkeypatch.setattr(hostkeys, "user_known_hosts", lambda: tmp_path / "user_known_hosts")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return path
