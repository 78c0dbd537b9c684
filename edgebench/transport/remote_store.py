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
"""

from __future__ import annotations

import datetime as _dt
import json
import posixpath
from pathlib import Path

from edgebench.errors import DiskFullError, ModelFileError, TransportError
from edgebench.transport.base import PushResult
from edgebench.transport.sshconn import SshConnection, quote_argv

CHUNK = 4 << 20
PACKET = 32 << 10
STALL_S = 120
# room left beside a model on the device for results and the OS
FREE_MARGIN_BYTES = 64 << 20
MANIFEST = "manifest.json"
PARTIAL = ".partial"

# $1 manifest, $2 final file: print the manifest and the file's `ls -ln` line, touching the
# manifest so its mtime says when the model was last wanted (the cost does not grow with file size)
_CHECK = r'''
if [ -f "$1" ] && [ -f "$2" ]; then touch -- "$1"; cat -- "$1"; printf '\n'; ls -ln -- "$2"; fi
'''

# $1 directory, $2 partial: make the directory, print the partial's size (or nothing) and df -Pk
_PREPARE = r'''
mkdir -p -- "$1" || exit 3
if [ -f "$2" ]; then ls -ln -- "$2"; else echo none; fi
df -Pk -- "$1" | tail -n 1
'''

# argv: partial, offset. Append stdin to the partial and print the sha256 of the whole partial (the
# prefix already there, then what arrives), hashing while writing instead of reading the file twice.
# One Python process, not `tee | sha256sum`: hashlib uses the CPU's SHA instructions through
# OpenSSL (measured 4x coreutils' sha256sum here), and there is no pipe to copy through.
_RECEIVE = r"""
import errno, hashlib, os, sys
path, offset = sys.argv[1], int(sys.argv[2])
digest = hashlib.sha256()
buf = bytearray(1 << 20)
view = memoryview(buf)
try:
    with open(path, "r+b" if offset else "wb") as f:
        while f.tell() < offset:
            n = f.readinto(view[:min(len(buf), offset - f.tell())])
            if not n:
                sys.exit("edgebench: partial file is shorter than expected")
            digest.update(view[:n])
        f.truncate(offset)
        read = sys.stdin.buffer.readinto
        while True:
            n = read(buf)
            if not n:
                break
            f.write(view[:n])
            digest.update(view[:n])
        f.flush()
        os.fsync(f.fileno())
except OSError as exc:
    full = exc.errno == errno.ENOSPC
    sys.stderr.write("edgebench: write failed: %s\n" % ("No space left on device" if full else exc))
    sys.exit(28 if full else 1)
print(digest.hexdigest())
"""

# $1 partial, $2 final, $3 manifest, $4 manifest text: rename into place, then record it
_COMMIT = r'''
mv -f -- "$1" "$2" && printf '%s\n' "$4" > "$3.tmp" && mv -f -- "$3.tmp" "$3"
'''

# evict least recently used models beyond a size budget, keeping the one just pushed
_EVICT = r'''
import json, os, shutil, sys
root, budget, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3]
entries = []
for sha in os.listdir(root):
    manifest = os.path.join(root, sha, "manifest.json")
    try:
        with open(manifest) as f:
            size = json.load(f)["size"]
        entries.append((os.path.getmtime(manifest), sha, size))
    except (OSError, ValueError, KeyError):
        continue
total = sum(e[2] for e in entries)
for _mtime, sha, size in sorted(entries):
    if total <= budget:
        break
    if sha != keep:
        shutil.rmtree(os.path.join(root, sha), ignore_errors=True)
        total -= size
        print(sha)
'''


def _sh(script: str, *args) -> str:
    return "sh -c " + quote_argv([script, "edgebench", *args])


def _ls_size(line: str) -> int | None:
    fields = line.split()
    return int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else None


class RemoteStore:
    def __init__(self, conn: SshConnection, workdir: str, python: str, max_cache_bytes: int | None = None):
        self.conn, self.workdir, self.python = conn, workdir, python
        self.max_cache_bytes = max_cache_bytes

    def locate(self, kind: str, sha256: str, name: str) -> tuple[str, str]:
        directory = posixpath.join(self.workdir, kind, sha256)
        return directory, posixpath.join(directory, name)

    def present(self, kind: str, sha256: str, name: str) -> str | None:
        directory, final = self.locate(kind, sha256, name)
        out = self.conn.check(_sh(_CHECK, posixpath.join(directory, MANIFEST), final), "store check")
        # line 1: the one-line JSON manifest; line 2: the `ls -ln` line (a name may go on over more)
        lines = [line for line in out.splitlines() if line.strip()]
        if len(lines) < 2:
            return None
        try:
            manifest = json.loads(lines[0])
        except ValueError:
            return None
        size = _ls_size(lines[1])
        if manifest.get("sha256") == sha256 and manifest.get("size") == size:
            return final
        return None

    def push(self, local: Path, sha256: str, kind: str = "models", name: str | None = None,
             progress=None) -> PushResult:
        name = name or local.name
        size = local.stat().st_size
        found = self.present(kind, sha256, name)
        if found:
            return PushResult(found, 0, skipped=True)
        directory, final = self.locate(kind, sha256, name)
        partial = posixpath.join(directory, PARTIAL)
        offset = self._prepare(directory, partial, size)
        result = self._upload(local, sha256, partial, offset, progress)
        if result != sha256 and offset:
            # the partial we resumed from was not a prefix of this file: start over once
            result = self._upload(local, sha256, partial, 0, progress)
            offset = 0
        if result != sha256:
            self.conn.run(_sh('rm -f -- "$1"', partial))
            raise ModelFileError(f"{self.conn.target.name}: sha256 of the uploaded {name} is {result or 'missing'}, "
                                 f"expected {sha256}; the partial upload was removed")
        manifest = json.dumps({"sha256": sha256, "size": size, "file": name,
                               "pushed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        self.conn.check(_sh(_COMMIT, partial, final, posixpath.join(directory, MANIFEST), manifest),
                        "rename into place")
        evicted = self._evict(kind, sha256) if kind == "models" else ()
        return PushResult(final, size - offset, skipped=False, resumed_from=offset, evicted=evicted)

    def _prepare(self, directory: str, partial: str, size: int) -> int:
        code, out, err = self.conn.run(_sh(_PREPARE, directory, partial))
        if code != 0:
            raise TransportError(f"{self.conn.target.name}: cannot create {directory}: {err.strip()}")
        lines = out.strip().splitlines()
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

    def _upload(self, local: Path, sha256: str, partial: str, offset: int, progress) -> str:
        channel = self.conn.open_exec(quote_argv([self.python, "-c", _RECEIVE, partial, str(offset)]))
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
        if code == 28 or "No space left" in err:
            self.conn.run(_sh('rm -f -- "$1"', partial))
            raise DiskFullError(f"{self.conn.target.name}: the device ran out of space while receiving "
                                f"{local.name}; the partial upload was removed")
        if code == -1 and not self.conn.alive:
            raise TransportError(f"{self.conn.target.name}: connection lost after {sent} bytes; run again to resume")
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
        return tuple(out.split())
