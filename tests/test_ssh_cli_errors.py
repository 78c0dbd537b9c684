"""What `devices check`, `devices trust`, `run` and `push` say through the CLI when the SSH side is
not as expected: a port that is open but is not SSH, a fingerprint that does not match the key
already recorded; and what a push of a small model reports. Real sshd, real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_ssh import device_yaml, trust

pytestmark = pytest.mark.usefixtures("private_known_hosts")


class NotSsh:
    """A TCP listener that answers like a web server (an HTTP status line, then closes): open, not SSH."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture
def not_ssh():
    server = NotSsh()
    yield server
    server.close()


def edgebench(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ))


def devices_folder(tmp_path: Path, text: str) -> Path:
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "devices" / "box.yaml").write_text(text)
    return tmp_path


def not_ssh_device(tmp_path: Path, port: int) -> Path:
    return devices_folder(tmp_path, f"name: box\ntransport: ssh\nhost: 127.0.0.1\nport: {port}\nuser: nobody\n"
                                    f"workdir: {tmp_path / 'device'}\n")


def assert_one_sentence(proc: subprocess.CompletedProcess, port: int) -> None:
    """The one line that says what the port is, and no paramiko log or traceback around it."""
    said = proc.stderr + proc.stdout
    assert "Traceback" not in said and "paramiko" not in said and "Exception (client)" not in said, said
    expected = f"something answers on port {port}, but it is not an SSH server"
    assert expected in said, said
    assert "Error reading SSH protocol banner" not in said, said


@pytest.mark.parametrize("command", [("devices", "check", "box"), ("devices", "trust", "box"),
                                     ("push", "m.gguf", "-d", "box")])
def test_a_port_that_is_not_ssh_is_one_sentence(tmp_path, not_ssh, command):
    work = not_ssh_device(tmp_path, not_ssh.port)
    (work / "m.gguf").write_bytes(os.urandom(4096))
    proc = edgebench(*command, cwd=work)
    assert proc.returncode == 3, proc.stderr
    assert_one_sentence(proc, not_ssh.port)
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_port_that_is_not_ssh_fails_the_run_once_per_cell_without_paramiko_noise(tmp_path, not_ssh):
    work = not_ssh_device(tmp_path, not_ssh.port)
    model = work / "m.gguf"
    model.write_bytes(os.urandom(4096))
    (work / "p.yaml").write_text(f"models: [{model}]\ntests: [tg4]\nretries: 2\nretry_backoff_s: 0\n"
                                 f"telemetry: {{enabled: false}}\n")
    proc = edgebench("run", "p.yaml", "-d", "box", "-o", work / "results", cwd=work)
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert_one_sentence(proc, not_ssh.port)
    assert proc.stderr.strip() == "", proc.stderr


def test_trust_refuses_a_fingerprint_other_than_the_recorded_key(sshd, tmp_path):
    work = devices_folder(tmp_path, device_yaml(sshd))
    trust(sshd)
    wrong = edgebench("devices", "trust", "box", "--fingerprint", "SHA256:" + "A" * 43, cwd=work)
    assert wrong.returncode == 3, wrong.stdout + wrong.stderr
    assert "fingerprint mismatch" in wrong.stderr and "already trusted" not in wrong.stdout
    right = edgebench("devices", "trust", "box", "--fingerprint", sshd.host_key_fingerprint, cwd=work)
    assert right.returncode == 0 and "already trusted" in right.stdout, right.stderr


def test_push_of_a_small_model_says_its_size(sshd, tmp_path):
    work = devices_folder(tmp_path, device_yaml(sshd))
    trust(sshd)
    model = work / "small.gguf"
    model.write_bytes(os.urandom(300_000))
    proc = edgebench("push", model, "-d", "box", cwd=work)
    assert proc.returncode == 0, proc.stderr
    assert " 0 MB" not in proc.stdout and "(0 MB/s)" not in proc.stdout, proc.stdout
    assert ": 300 kB in " in proc.stdout, proc.stdout
