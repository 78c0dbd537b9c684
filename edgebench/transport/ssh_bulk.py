"""Bulk bytes to an SSH device: a local file piped into a device command's stdin.

Large transfers go through OpenSSH's `ssh` client when it can be pinned to the
device's recorded host key (see SshConnection.ssh_process): its C crypto, with
AES-GCM where both ends have it, moves bytes about twice as fast as paramiko.
paramiko carries everything else, and takes over for good once `ssh` cannot
be used.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from edgebench.errors import HostKeyError, TransportError
from edgebench.transport.base import Completed, Progress
from edgebench.transport.sshconn import SshConnection, refused_host_key

CHUNK = 4 << 20
PACKET = 32 << 10
STALL_S = 120
POLL_S = 0.25
# below this, starting a second SSH connection for `ssh` costs more than its speed saves
BULK_MIN_BYTES = 16 << 20


class BulkSender:
    def __init__(self, conn: SshConnection):
        self.conn = conn
        # which client carried the last transfer, and why `ssh` is not used any more (if it is not)
        self.last_route: str | None = None
        self.ssh_refused: str | None = None

    def send(self, command: str, source: Path, offset: int, progress: Progress | None) -> Completed:
        """Run the (quoted) command with source's bytes from offset on as its stdin."""
        if self.ssh_refused is None and source.stat().st_size - offset >= BULK_MIN_BYTES:
            completed = self._send_ssh(command, source, offset, progress)
            if completed is not None:
                self.last_route = "ssh"
                return completed
        self.last_route = "paramiko"
        return self._send_paramiko(command, source, offset, progress)

    def _send_ssh(self, command: str, source: Path, offset: int, progress) -> Completed | None:
        """None when OpenSSH's client cannot run, and paramiko from then on."""
        total = source.stat().st_size
        with open(source, "rb", buffering=0) as stdin, tempfile.TemporaryFile() as out, \
                tempfile.TemporaryFile() as err:
            stdin.seek(offset)
            # ssh reads the file itself, no copy through Python; it shares this open file, so the
            # file's offset tells how far it has read
            with self.conn.ssh_process(command, stdin=stdin, stdout=out, stderr=err) as proc:
                if proc is None:
                    self.ssh_refused = "no ssh client that can be pinned to the device's host key"
                    return None
                self._watch(proc, stdin, total, progress)
            sent = os.lseek(stdin.fileno(), 0, os.SEEK_CUR) - offset
            out.seek(0)
            err.seek(0)
            out_text, err_text = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode == 255:  # ssh's own failure; the device command is never one that exits 255
            if refused_host_key(err_text):
                raise HostKeyError(f"{self.conn.target.name}: OpenSSH's client refused the device's host key "
                                   f"(it accepts only the recorded one; nothing was uploaded): {err_text.strip()}")
            if not self._reachable():
                raise TransportError(f"{self.conn.target.name}: upload interrupted after {sent} bytes "
                                     f"({err_text.strip()[-200:]}); run again to resume")
            self.ssh_refused = err_text.strip()[-300:] or "ssh exited with 255"
            return None
        return Completed(proc.returncode, out_text, err_text)

    def _watch(self, proc: subprocess.Popen, stdin, total: int, progress) -> None:
        last, moved = -1, time.monotonic()
        while True:
            try:
                proc.wait(timeout=POLL_S)
                return
            except subprocess.TimeoutExpired:
                pass
            done = os.lseek(stdin.fileno(), 0, os.SEEK_CUR)
            now = time.monotonic()
            if done != last or done >= total:  # after the last byte the device hashes and syncs
                last, moved = done, now
            elif now - moved > STALL_S:  # leaving kills ssh; what arrived stays for a resume
                raise TransportError(f"{self.conn.target.name}: the upload made no progress for {STALL_S} s "
                                     f"after {done} bytes; run again to resume")
            if progress:
                progress(done, total)

    def _reachable(self) -> bool:
        try:
            self.conn.run("true", timeout=30)
            return True
        except TransportError:
            return False

    def _send_paramiko(self, command: str, source: Path, offset: int, progress) -> Completed:
        channel = self.conn.open_exec(command)
        channel.settimeout(STALL_S)  # a device that stops reading fails the push instead of hanging it
        sent, total = offset, source.stat().st_size
        try:
            with open(source, "rb") as f:
                f.seek(offset)
                for block in iter(lambda: f.read(CHUNK), b""):
                    view = memoryview(block)
                    # packet-sized pieces: paramiko's sendall re-slices (copies) what it has left
                    for start in range(0, len(block), PACKET):
                        channel.sendall(view[start:start + PACKET])
                    sent += len(block)
                    if progress:
                        progress(sent, total)
            channel.shutdown_write()
            out = channel.makefile("rb").read().decode(errors="replace")
        except (OSError, EOFError) as exc:
            if not self.conn.alive:
                channel.close()
                raise TransportError(f"{self.conn.target.name}: upload interrupted after {sent} bytes ({exc}); "
                                     f"run again to resume") from exc
            out = ""  # the device command stopped reading: its exit status and stderr say why
        except BaseException:
            channel.close()  # interrupted: what arrived stays on the device for the next push to resume
            raise
        try:
            err = channel.makefile_stderr("rb").read().decode(errors="replace")
            code = channel.recv_exit_status()
        finally:
            channel.close()
        if code == -1 and not self.conn.alive:
            raise TransportError(f"{self.conn.target.name}: connection lost after {sent} bytes; run again to resume")
        return Completed(code, out, err)
