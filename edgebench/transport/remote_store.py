"""The content-addressed store on a device, reached over SSH.

    <workdir>/models/<sha256>/<file>          a model, named by the sha256 of its bytes
    <workdir>/models/<sha256>/manifest.json   what is there; its mtime is the last use (for LRU)
    <workdir>/models/<sha256>/.partial        an upload in progress, never under the final name
    <workdir>/runner/<sha256>/runner.pyz      the runner zipapp, stored the same way

An upload streams into `.partial` while the device hashes what it writes (with
the device's Python and hashlib, which the runner needs anyway); it is
renamed into place only when the device's hash equals the controller's. A
dropped upload resumes from the partial file's size and the hash still covers
the whole file. Every path reaches the shell as a quoted argument of a fixed
script, never spliced into it.

Large uploads go through OpenSSH's `ssh` client when it can be pinned to the
device's recorded host key (see SshConnection.ssh_process); paramiko carries
everything else and takes over when `ssh` cannot be used.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import posixpath
import subprocess
import tempfile
import time
from pathlib import Path

from edgebench.errors import DiskFullError, HostKeyError, ModelFileError, TransportError
from edgebench.models import sha256_file
from edgebench.transport.base import Evicted, PushResult
from edgebench.transport.sshconn import SshConnection, quote_argv, refused_host_key

CHUNK = 4 << 20
PACKET = 32 << 10
STALL_S = 120
POLL_S = 0.25
# below this, starting a second SSH connection for `ssh` costs more than its speed saves
BULK_MIN_BYTES = 16 << 20
# room left beside a model on the device for results and the OS
FREE_MARGIN_BYTES = 64 << 20
MANIFEST = "manifest.json"
PARTIAL = ".partial"

# $1 manifest, $2 final file, $3 directory, $4 partial: print the manifest and the file's `ls -ln`
# line, touching the manifest so its mtime says when the model was last wanted (the cost does not
# grow with file size); without them, `absent` and what _PREPARE prints. One command, not two:
# every command pays for the device's login shell (measured 0.14-0.18 s here, a ~/.bashrc).
_SURVEY = r'''
if [ -f "$1" ] && [ -f "$2" ]; then touch -- "$1"; cat -- "$1"; printf '\n'; ls -ln -- "$2"; exit 0; fi
echo absent
shift 2
{prepare}'''

# $1 directory, $2 partial: make the directory, print the partial's size (or nothing) and df -Pk
_PREPARE = r'''
mkdir -p -- "$1" || exit 3
if [ -f "$2" ]; then ls -ln -- "$2"; else echo none; fi
df -Pk -- "$1" | tail -n 1
'''
_SURVEY = _SURVEY.replace("{prepare}", _PREPARE.lstrip("\n"))

# argv: partial, offset, sha256, final, manifest, manifest text. Append stdin to the partial and
# print the sha256 of the whole partial (the prefix already there, then what arrives), hashing while
# writing instead of reading the file twice.
# One Python process, not `tee | sha256sum`: hashlib uses the CPU's SHA instructions through
# OpenSSL (measured 4x coreutils' sha256sum here), and there is no pipe to copy through.
# A 1 MiB stdin pipe (sshd's default is 64 KiB) halves the wake-ups per byte; a thread flushes
# what is written so far while more arrives, so the closing fsync does not wait for the whole
# file (measured: pipe 233-250 -> 290-296 MB/s, the flush 0.45 s -> 0.02 s per GiB). The flush
# thread's errors are re-raised here: a failed fdatasync is reported once per open file, so the
# closing fsync would not see it again. The rename into place happens here, on the device, once
# the digest matches (no round trip more); on a mismatch the partial stays for the controller.
_RECEIVE = r"""
import errno, fcntl, hashlib, os, sys, threading
path, offset, expected, final, manifest, record = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
digest = hashlib.sha256()
buf = bytearray(1 << 20)
view = memoryview(buf)
try:
    fcntl.fcntl(0, getattr(fcntl, "F_SETPIPE_SZ", 1031), len(buf))
except OSError:
    pass  # not a pipe, or above the device's pipe-max-size: the default works, only slower
flusher, flush_errors = None, []
def flush(fd):
    try:
        os.fdatasync(fd)
    except OSError as exc:
        flush_errors.append(exc)
try:
    with open(path, "r+b" if offset else "wb") as f:
        while f.tell() < offset:
            n = f.readinto(view[:min(len(buf), offset - f.tell())])
            if not n:
                sys.exit("edgebench: partial file is shorter than expected")
            digest.update(view[:n])
        f.truncate(offset)
        read = sys.stdin.buffer.raw.readinto
        unflushed = 0
        while True:
            n = read(buf)
            if not n:
                break
            f.write(view[:n])
            digest.update(view[:n])
            unflushed += n
            if unflushed >= 32 << 20 and not (flusher and flusher.is_alive()):
                f.flush()
                flusher = threading.Thread(target=flush, args=(f.fileno(),), daemon=True)
                flusher.start()
                unflushed = 0
        if flusher:
            flusher.join()
        if flush_errors:
            raise flush_errors[0]
        f.flush()
        os.fsync(f.fileno())
    if digest.hexdigest() == expected:
        os.replace(path, final)
        with open(manifest + ".tmp", "w") as m:
            m.write(record + "\n")
        os.replace(manifest + ".tmp", manifest)
except OSError as exc:
    full = exc.errno == errno.ENOSPC
    sys.stderr.write("edgebench: write failed: %s\n" % ("No space left on device" if full else exc))
    sys.exit(28 if full else 1)
print(digest.hexdigest())
"""

# evict least recently used models beyond a size budget, keeping the one just pushed
_EVICT = r'''
import json, os, shutil, sys
root, budget, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entries = []
for sha in os.listdir(root):
    manifest = os.path.join(root, sha, "manifest.json")
    try:
        with open(manifest) as f:
            record = json.load(f)
        entries.append((os.path.getmtime(manifest), sha, record["size"], record.get("file", "")))
    except (OSError, ValueError, KeyError):
        continue
total = sum(e[2] for e in entries)
for _mtime, sha, size, name in sorted(entries):
    if total <= budget:
        break
    if sha != keep:
        shutil.rmtree(os.path.join(root, sha), ignore_errors=True)
        total -= size
        print(json.dumps({"sha256": sha, "file": name, "size": size}))
'''


# $1 directory, then name/target pairs: a directory of hard links to stored files. Not symlinks:
# onnxruntime refuses external data whose real path leaves the model's directory.
_LINK = r'''
d=$1; shift; mkdir -p -- "$d" || exit 3
while [ $# -gt 1 ]; do ln -f -- "$2" "$d/$1" 2>/dev/null || cp -f -- "$2" "$d/$1" || exit 4; shift 2; done
'''


def _sh(script: str, *args) -> str:
    return "sh -c " + quote_argv([script, "edgebench", *args])


def _matches(lines: list[str], sha256: str) -> bool:
    """line 1: the one-line JSON manifest; line 2: the `ls -ln` line (a name may go on over more)"""
    if len(lines) < 2:
        return False
    try:
        manifest = json.loads(lines[0])
    except ValueError:
        return False
    return manifest.get("sha256") == sha256 and manifest.get("size") == _ls_size(lines[1])


def _ls_size(line: str) -> int | None:
    fields = line.split()
    return int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else None


class RemoteStore:
    def __init__(self, conn: SshConnection, workdir: str, python: str, max_cache_bytes: int | None = None):
        self.conn, self.workdir, self.python = conn, workdir, python
        self.max_cache_bytes = max_cache_bytes
        # which client carried the last upload, and why `ssh` is not used any more (if it is not)
        self.last_route: str | None = None
        self.ssh_refused: str | None = None

    def locate(self, kind: str, sha256: str, name: str) -> tuple[str, str]:
        directory = posixpath.join(self.workdir, kind, sha256)
        return directory, posixpath.join(directory, name)

    def push_bundle(self, main: Path, extra: tuple[Path, ...], bundle_sha256: str, progress=None) -> PushResult:
        """A model with external-data files: each file stored (and verified) under its own hash,
        then hard-linked side by side under `<workdir>/bundles/<bundle sha256>/` by the names the
        model uses, so onnxruntime finds the data beside the model. Linking again every time heals
        a bundle whose file was replaced."""
        sent, links, evicted = 0, [], []
        for path in (main, *extra):
            result = self.push(path, sha256_file(path), progress=progress)
            sent += result.sent_bytes
            links += [path.name, result.path]
            evicted += result.evicted
        directory = posixpath.join(self.workdir, "bundles", bundle_sha256)
        self.conn.check(_sh(_LINK, directory, *links), "linking the model's files into one directory")
        return PushResult(posixpath.join(directory, main.name), sent, skipped=sent == 0, evicted=tuple(evicted))

    def push(self, local: Path, sha256: str, kind: str = "models", name: str | None = None,
             progress=None) -> PushResult:
        name = name or local.name
        size = local.stat().st_size
        directory, final = self.locate(kind, sha256, name)
        partial, manifest = posixpath.join(directory, PARTIAL), posixpath.join(directory, MANIFEST)
        code, out, err = self.conn.run(_sh(_SURVEY, manifest, final, directory, partial))
        lines = [line for line in out.splitlines() if line.strip()]
        if code == 0 and lines[:1] == ["absent"]:
            offset = self._room(lines[1:], size)
        elif code == 0 and _matches(lines, sha256):
            return PushResult(final, 0, skipped=True)
        elif code == 0:  # a manifest that does not match its file: upload again
            offset = self._prepare(directory, partial, size)
        else:
            raise TransportError(f"{self.conn.target.name}: cannot create {directory}: {err.strip()}")
        record = json.dumps({"sha256": sha256, "size": size, "file": name,
                             "pushed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        place = (sha256, final, manifest, record)
        result = self._upload(local, partial, offset, place, progress)
        if result != sha256 and offset:
            # the partial we resumed from was not a prefix of this file: start over once
            result = self._upload(local, partial, 0, place, progress)
            offset = 0
        if result != sha256:
            self.conn.run(_sh('rm -f -- "$1"', partial))
            raise ModelFileError(f"{self.conn.target.name}: sha256 of the uploaded {name} is {result or 'missing'}, "
                                 f"expected {sha256}; the partial upload was removed")
        evicted = self._evict(kind, sha256) if kind == "models" else ()
        return PushResult(final, size - offset, skipped=False, resumed_from=offset, evicted=evicted)

    def _prepare(self, directory: str, partial: str, size: int) -> int:
        code, out, err = self.conn.run(_sh(_PREPARE, directory, partial))
        if code != 0:
            raise TransportError(f"{self.conn.target.name}: cannot create {directory}: {err.strip()}")
        return self._room(out.strip().splitlines(), size)

    def _room(self, lines: list[str], size: int) -> int:
        """The offset to resume from, once it is clear the rest fits (from _PREPARE's output)."""
        offset = (_ls_size(lines[0]) or 0) if lines and lines[0] != "none" else 0
        if offset > size:
            offset = 0  # a partial longer than the file belongs to something else: overwrite it
        df = lines[-1].split() if lines else []
        free = int(df[3]) * 1024 if len(df) > 3 and df[3].isdigit() else None
        needed = size - offset + FREE_MARGIN_BYTES
        if free is not None and free < needed:
            raise DiskFullError(f"{self.conn.target.name}: not enough space in {self.workdir}: {free / 2**20:.0f} MiB "
                                f"free, {needed / 2**20:.0f} MiB needed")
        return offset

    def _upload(self, local: Path, partial: str, offset: int, place: tuple, progress) -> str:
        command = quote_argv([self.python, "-c", _RECEIVE, partial, str(offset), *place])
        if self.ssh_refused is None and local.stat().st_size - offset >= BULK_MIN_BYTES:
            digest = self._upload_ssh(local, command, partial, offset, progress)
            if digest is not None:
                self.last_route = "ssh"
                return digest
        self.last_route = "paramiko"
        return self._upload_paramiko(local, command, partial, offset, progress)

    def _upload_ssh(self, local: Path, command: str, partial: str, offset: int, progress) -> str | None:
        """Upload with OpenSSH's client (its C crypto, AES-GCM where both ends have it, moves bytes
        about twice as fast as paramiko); None when it cannot run, and paramiko from then on."""
        total = local.stat().st_size
        with open(local, "rb", buffering=0) as source, tempfile.TemporaryFile() as out, \
                tempfile.TemporaryFile() as err:
            source.seek(offset)
            # ssh reads the file itself, no copy through Python; it shares this open file, so the
            # file's offset tells how far it has read
            with self.conn.ssh_process(command, stdin=source, stdout=out, stderr=err) as proc:
                if proc is None:
                    self.ssh_refused = "no ssh client that can be pinned to the device's host key"
                    return None
                self._watch(proc, source, total, progress)
            sent = os.lseek(source.fileno(), 0, os.SEEK_CUR) - offset
            out.seek(0)
            err.seek(0)
            out_text, err_text = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode == 255:  # ssh's own failure; the receiver never exits 255
            if refused_host_key(err_text):
                raise HostKeyError(f"{self.conn.target.name}: OpenSSH's client refused the device's host key "
                                   f"(it accepts only the recorded one; nothing was uploaded): {err_text.strip()}")
            if not self._reachable():
                raise TransportError(f"{self.conn.target.name}: upload interrupted after {sent} bytes "
                                     f"({err_text.strip()[-200:]}); run again to resume")
            self.ssh_refused = err_text.strip()[-300:] or "ssh exited with 255"
            return None
        return self._conclude(proc.returncode, out_text, err_text, partial, local)

    def _watch(self, proc: subprocess.Popen, source, total: int, progress) -> None:
        last, moved = -1, time.monotonic()
        while True:
            try:
                proc.wait(timeout=POLL_S)
                return
            except subprocess.TimeoutExpired:
                pass
            done = os.lseek(source.fileno(), 0, os.SEEK_CUR)
            now = time.monotonic()
            if done != last or done >= total:  # after the last byte the device hashes and syncs
                last, moved = done, now
            elif now - moved > STALL_S:  # leaving kills ssh; the partial stays for a resume
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

    def _upload_paramiko(self, local: Path, command: str, partial: str, offset: int, progress) -> str:
        channel = self.conn.open_exec(command)
        channel.settimeout(STALL_S)  # a device that stops reading fails the push instead of hanging it
        sent, total = offset, local.stat().st_size
        try:
            with open(local, "rb") as f:
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
            out = ""  # the receiver stopped reading: its exit status and stderr say why
        except BaseException:
            channel.close()  # interrupted: the partial stays on the device for the next push to resume
            raise
        try:
            err = channel.makefile_stderr("rb").read().decode(errors="replace")
            code = channel.recv_exit_status()
        finally:
            channel.close()
        if code == -1 and not self.conn.alive:
            raise TransportError(f"{self.conn.target.name}: connection lost after {sent} bytes; run again to resume")
        return self._conclude(code, out, err, partial, local)

    def _conclude(self, code: int, out: str, err: str, partial: str, local: Path) -> str:
        """The receiver's digest, or the error its exit status and stderr describe."""
        if code == 28 or "No space left" in err:
            self.conn.run(_sh('rm -f -- "$1"', partial))
            raise DiskFullError(f"{self.conn.target.name}: the device ran out of space while receiving "
                                f"{local.name}; the partial upload was removed")
        if code != 0:
            raise TransportError(f"{self.conn.target.name}: receiving {local.name} failed (exit {code}): "
                                 f"{err.strip()[-500:]}")
        return out.split()[0] if out.split() else ""

    def _evict(self, kind: str, keep: str) -> tuple[str, ...]:
        if not self.max_cache_bytes:
            return ()
        root = posixpath.join(self.workdir, kind)
        out = self.conn.check(quote_argv([self.python, "-c", _EVICT, root, str(self.max_cache_bytes), keep]),
                              "cache eviction")
        return tuple(Evicted(**json.loads(line)) for line in out.splitlines() if line.strip())
