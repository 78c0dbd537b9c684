"""pytest plugin: a real PostgreSQL server on a loopback port, started by the suite for the database tests.

The server runs from a temporary data directory as an unprivileged user (PostgreSQL refuses root: the
`postgres` account when the suite runs as root, else the current user) and is stopped at the end of the
session. On CI (CI=true) a missing PostgreSQL fails the tests that need it (.ci/run installs it);
elsewhere they skip with the reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from missing_parts import missing

SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/usr/pgsql-*/bin")


def find_pg_bin() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    found = sorted((Path(p) for pattern in SEARCH for p in glob.glob(pattern) if (Path(p) / "pg_ctl").exists()),
                   key=lambda p: p.as_posix())
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(user: str | None, command: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@pytest.fixture(scope="session")
def postgres_url():
    """postgresql://... of a fresh server; each test makes its own database with `postgres_db`."""
    pg_bin = find_pg_bin()
    if pg_bin is None:
        missing("PostgreSQL (apt-get install postgresql)")
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
            user = "postgres"
        except KeyError:
            missing("an unprivileged 'postgres' account to run PostgreSQL as")
    base = Path(tempfile.mkdtemp(prefix="edgebench-pg-"))
    data, sockets = base / "data", base / "sock"
    sockets.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(sockets, user)
    port = _free_port()
    subprocess.run(_as_user(user, [str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                   "--no-sync"]), check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=16MB"
    subprocess.run(_as_user(user, [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                   str(base / "log"), "-w", "start"]), check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_user(user, [str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"]),
                       capture_output=True, timeout=120)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_db(postgres_url, request):
    """A database of its own for one test, dropped afterwards."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
