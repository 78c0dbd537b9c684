"""The sshd test servers themselves, checked with the system OpenSSH client.

If these fail, every SSH transport test is suspect; so they use ssh(1), not paramiko
or edgebench code, to keep the two sides independent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess

import pytest
from sshd_server import SshServer, SshServerError, cmdline, wait_for

TIMEOUT = 30  # generous: a loaded CI box can take seconds for a key exchange


def ssh(server: SshServer, command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(server.ssh_argv(command, **kwargs), capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT)


def remote_pids(server: SshServer, argv: list[str]) -> list[int]:
    return [pid for pid in server.children() if cmdline(pid) == argv]


def test_key_login_runs_the_command(sshd):
    result = ssh(sshd, "echo ok")
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    assert f"Accepted publickey for {sshd.user} from 127.0.0.1" in sshd.log_tail(20)


def test_advertised_host_key_is_the_one_served(sshd):
    # ssh-keyscan reads the key off the wire, so this checks host_public_key and
    # known_hosts_line against what the server actually presents.
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(sshd.port), "127.0.0.1"],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert scan.stdout.strip() == sshd.known_hosts_line()
    assert sshd.known_hosts_line() == f"[127.0.0.1]:{sshd.port} {sshd.host_public_key}"
    assert sshd.host_public_key.startswith("ssh-ed25519 AAAA")
    assert sshd.host_key_fingerprint.startswith("SHA256:")


def test_unknown_host_key_is_refused(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    marker = tmp_path / "ran"
    result = ssh(sshd, f"touch {marker}", known_hosts=empty)
    assert result.returncode == 255
    assert "Host key verification failed." in result.stderr
    assert not marker.exists()


def test_changed_host_key_is_refused(sshd, tmp_path):
    old_known = tmp_path / "old_known_hosts"
    old_known.write_text(sshd.known_hosts_line() + "\n")
    old_port, old_fingerprint = sshd.port, sshd.host_key_fingerprint

    sshd.restart_with_new_host_key()

    assert sshd.port == old_port
    assert sshd.host_key_fingerprint != old_fingerprint
    refused = ssh(sshd, "echo ok", known_hosts=old_known)
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
    assert sshd.host_key_fingerprint in refused.stderr  # ssh names the key it was offered
    assert refused.stdout == ""
    accepted = ssh(sshd, "echo ok")
    assert (accepted.returncode, accepted.stdout) == (0, "ok\n"), accepted.stderr


def test_kill_connections_drops_sessions_but_keeps_listening(sshd):
    client = subprocess.Popen(sshd.ssh_argv("sleep 30"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sleeper = wait_for(lambda: remote_pids(sshd, ["sleep", "30"]), what="remote sleep 30")[0]

        killed = sshd.kill_connections()

        assert sleeper in killed
        assert client.wait(timeout=TIMEOUT) != 0
        assert sshd.children() == []
        assert sshd.running
        again = ssh(sshd, "echo ok")
        assert (again.returncode, again.stdout) == (0, "ok\n"), again.stderr
    finally:
        client.kill()
        client.communicate()


def test_kill_connections_can_leave_commands_running(sshd):
    # The "runner survives a network drop" case: sshd's processes die, the command lives on.
    client = subprocess.Popen(sshd.ssh_argv("sleep 30"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sleeper = None
    try:
        sleeper = wait_for(lambda: remote_pids(sshd, ["sleep", "30"]), what="remote sleep 30")[0]

        killed = sshd.kill_connections(keep_commands=True)

        assert sleeper not in killed and killed
        assert client.wait(timeout=TIMEOUT) != 0
        assert cmdline(sleeper) == ["sleep", "30"]
        with open(f"/proc/{sleeper}/stat") as f:
            assert f.read().rpartition(")")[2].split()[0] != "T"  # resumed, not left stopped
    finally:
        client.kill()
        client.wait()
        if sleeper is not None:  # orphaned on purpose above, so no fixture will end it
            with contextlib.suppress(ProcessLookupError):
                os.kill(sleeper, signal.SIGKILL)


def test_factory_servers_are_independent(sshd_factory):
    first, second = sshd_factory(2)
    assert first.port != second.port
    assert first.host_key_fingerprint != second.host_key_fingerprint
    for server in (first, second):
        result = ssh(server, "echo ok")
        assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
    # A host key learnt for one port says nothing about another: no entry, no login.
    crossed = subprocess.run(second.ssh_argv("echo ok", known_hosts=first.known_hosts_file()),
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert crossed.returncode == 255 and "Host key verification failed." in crossed.stderr


def test_children_follow_a_remote_command(sshd):
    assert sshd.children() == []
    client = subprocess.Popen(sshd.ssh_argv("sleep 2"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sleeper = wait_for(lambda: remote_pids(sshd, ["sleep", "2"]), what="remote sleep 2")[0]
        assert sleeper in sshd.children(include_sshd=False)
        assert all(cmdline(pid) for pid in sshd.children())
        _, err = client.communicate(timeout=TIMEOUT)
        assert client.returncode == 0, err
    finally:
        client.kill()
    sshd.wait_idle()
    assert sshd.children() == []


def test_non_root_login_user(sshd_factory):
    (server,) = sshd_factory(1, user="edgeuser")
    result = ssh(server, f"id -u; id -un; touch {server.device_dir}/written && echo written")
    assert result.returncode == 0, result.stderr + server.log_tail()
    uid, name, written = result.stdout.split()
    assert int(uid) != 0
    assert (name, written) == ("edgeuser", "written")
    assert (server.device_dir / "written").stat().st_uid == int(uid)


def test_busy_port_fails_with_the_log(tmp_path, sshd_binary):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SshServer(tmp_path, port=taken.getsockname()[1], sshd_path=sshd_binary)
        with pytest.raises(SshServerError, match="Address already in use"):
            server.start()
    assert not server.running


def test_stop_ends_sessions_frees_the_port_and_is_idempotent(sshd):
    client = subprocess.Popen(sshd.ssh_argv("sleep 30"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sleeper = wait_for(lambda: remote_pids(sshd, ["sleep", "30"]), what="remote sleep 30")[0]
        sshd.stop()
        sshd.stop()
        assert client.wait(timeout=TIMEOUT) != 0
        assert cmdline(sleeper) == []
        assert not sshd.running and sshd.pid is None
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", sshd.port), timeout=5).close()
    finally:
        client.kill()
        client.wait()


def test_small_tmpfs_fills_up_over_ssh(sshd, small_tmpfs):
    assert os.statvfs(small_tmpfs).f_blocks * os.statvfs(small_tmpfs).f_frsize == 16 * 1024 * 1024
    result = ssh(sshd, f"dd if=/dev/zero of={small_tmpfs}/model.gguf bs=1M count=32")
    assert result.returncode != 0
    assert "No space left on device" in result.stderr
