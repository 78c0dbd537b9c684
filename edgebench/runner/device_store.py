"""The device side of the model store: what the controller's push asks of the device.

    python3 runner.pyz store survey  DIR FILE
    python3 runner.pyz store receive DIR FILE OFFSET SHA256 RECORD [BUDGET_BYTES]  < bytes
    python3 runner.pyz store discard DIR
    python3 runner.pyz store link    DIR NAME TARGET [NAME TARGET ...]

A stored file lies at DIR/FILE, where DIR is named by the sha256 of its bytes;
DIR/manifest.json says what is there, and its mtime when it was last wanted
(for least-recently-used eviction). An upload in progress is DIR/.partial,
never under the final name. The controller decides; this side only reports
and does (transport/remote_store.py is the other half).

Each command prints one JSON line. A failure is one line on stderr and an
exit status: 2 usage, 3 a directory cannot be made, 4 a file cannot be
linked, 28 the disk is full, 1 anything else.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import threading

MANIFEST = "manifest.json"
BUNDLES = "bundles"  # beside the models directory: <workdir>/bundles/<sha256>/<file>...
PARTIAL = ".partial"
BUFFER = 1 << 20
# fdatasync what has arrived every this many bytes while more arrives, so the closing fsync is short
FLUSH_EVERY = 32 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux's number; the constant is Python 3.10+

EXIT_FAILED, EXIT_USAGE, EXIT_NO_DIRECTORY, EXIT_NO_LINK, EXIT_DISK_FULL = 1, 2, 3, 4, 28


class StoreFailure(Exception):
    def __init__(self, message, code=EXIT_FAILED):
        Exception.__init__(self, message)
        self.code = code


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _size(path):
    try:
        return os.path.getsize(path) if os.path.isfile(path) else None
    except OSError:
        return None


def _make_directory(directory, code=EXIT_NO_DIRECTORY):
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise StoreFailure("cannot create %s: %s" % (directory, exc.strerror or exc), code)


def survey(directory, name):
    """What is stored (the manifest and the file's size), else what an upload would resume from
    (the partial's size) and how much room there is. One command for both: every command costs a
    device login (measured 0.14-0.18 s with a ~/.bashrc)."""
    manifest, final = os.path.join(directory, MANIFEST), os.path.join(directory, name)
    report = {"manifest": None, "size": None}
    if os.path.isfile(manifest) and os.path.isfile(final):
        try:
            os.utime(manifest)  # wanted now: the last to go when the cache evicts (constant cost, any size)
        except OSError:
            pass
        report["manifest"], report["size"] = _read_json(manifest), _size(final)
    _make_directory(directory)
    usage = os.statvfs(directory)
    report["partial"] = _size(os.path.join(directory, PARTIAL))
    report["free"] = usage.f_bavail * usage.f_frsize
    return report


class _Flusher:
    """fdatasync in a thread while more arrives. Its error is kept to re-raise: a failed fdatasync
    is reported once per open file, so the closing fsync would not see it again."""

    def __init__(self):
        self.thread, self.errors = None, []

    @property
    def busy(self):
        return self.thread is not None and self.thread.is_alive()

    def start(self, fd):
        self.thread = threading.Thread(target=self._sync, args=(fd,))
        self.thread.daemon = True
        self.thread.start()

    def _sync(self, fd):
        try:
            os.fdatasync(fd)
        except OSError as exc:
            self.errors.append(exc)

    def finish(self):
        if self.thread is not None:
            self.thread.join()
        if self.errors:
            raise self.errors[0]


def _widen_pipe(fd):
    """A 1 MiB pipe (sshd's is 64 KiB) halves the wake-ups per byte (measured: 233-250 -> 290-296 MB/s)."""
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, BUFFER)
    except OSError:
        pass  # not a pipe, or above the device's pipe-max-size: the default works, only slower


def append_and_hash(path, offset, source):
    """Keep the first `offset` bytes of `path`, append what `source` (a raw binary stream) gives
    until its end, and return the sha256 of the whole file. Hashing while writing reads nothing
    twice; hashlib uses the CPU's SHA instructions through OpenSSL (measured 4x coreutils'
    sha256sum), so this is one Python process rather than `tee | sha256sum`."""
    digest = hashlib.sha256()
    buf = bytearray(BUFFER)
    view = memoryview(buf)
    flusher = _Flusher()
    with open(path, "r+b" if offset else "wb") as f:
        while f.tell() < offset:
            n = f.readinto(view[:min(len(buf), offset - f.tell())])
            if not n:
                raise StoreFailure("partial file is shorter than expected")
            digest.update(view[:n])
        f.truncate(offset)
        unflushed = 0
        while True:
            n = source.readinto(buf)
            if not n:
                break
            f.write(view[:n])
            digest.update(view[:n])
            unflushed += n
            if unflushed >= FLUSH_EVERY and not flusher.busy:
                f.flush()
                flusher.start(f.fileno())
                unflushed = 0
        flusher.finish()
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def _write_manifest(directory, record):
    manifest = os.path.join(directory, MANIFEST)
    with open(manifest + ".tmp", "w") as m:
        m.write(record + "\n")
    os.replace(manifest + ".tmp", manifest)


def receive(directory, name, offset, expected, record, budget=None, source=None):
    """Append stdin to the partial; when the whole file hashes to `expected`, rename it into place
    here, on the device (no round trip more), write its manifest and evict beyond `budget`. On a
    mismatch the partial stays for the controller to decide about."""
    partial = os.path.join(directory, PARTIAL)
    if source is None:
        _widen_pipe(0)
        source = sys.stdin.buffer.raw
    try:
        digest = append_and_hash(partial, offset, source)
        report = {"sha256": digest, "evicted": []}
        if digest == expected:
            os.replace(partial, os.path.join(directory, name))
            _write_manifest(directory, record)
            if budget is not None:
                report["evicted"] = evict(os.path.dirname(directory), budget, keep=os.path.basename(directory))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFailure("write failed: No space left on device", EXIT_DISK_FULL)
        raise StoreFailure("write failed: %s" % exc)
    return report


def evict(root, budget, keep):
    """Remove the least recently used entries under `root` until they fit in `budget` bytes,
    never `keep` (the one just stored); return what went."""
    entries = []
    for sha in os.listdir(root):
        manifest = os.path.join(root, sha, MANIFEST)
        record = _read_json(manifest)
        try:
            entries.append((os.path.getmtime(manifest), sha, int(record["size"]), record.get("file", "")))
        except (OSError, TypeError, KeyError, ValueError):
            continue
    total = sum(entry[2] for entry in entries)
    gone = []
    for _mtime, sha, size, name in sorted(entries):
        if total <= budget:
            break
        if sha != keep:
            shutil.rmtree(os.path.join(root, sha), ignore_errors=True)
            total -= size
            gone.append({"sha256": sha, "file": name, "size": size})
    if gone:
        _prune_bundles(os.path.join(os.path.dirname(root), BUNDLES))
    return gone


def _prune_bundles(bundles):
    """Drop the bundles that would hold evicted bytes on disk. A bundle's files are hard links to stored
    files, so one whose stored file went is now its last link (st_nlink 1): the disk space the eviction
    meant to free would stay taken. A copied bundle (a filesystem without hard links) has st_nlink 1 too,
    and goes as well: it duplicates stored bytes. Either is linked again by the next push that needs it."""
    try:
        names = os.listdir(bundles)
    except OSError:
        return
    for name in names:
        bundle = os.path.join(bundles, name)
        try:
            stale = any(os.lstat(os.path.join(bundle, entry)).st_nlink < 2 for entry in os.listdir(bundle))
        except OSError:
            continue
        if stale:
            shutil.rmtree(bundle, ignore_errors=True)


def discard(directory):
    """Drop an upload in progress (a bad one: resuming it would only fail again)."""
    try:
        os.remove(os.path.join(directory, PARTIAL))
    except FileNotFoundError:
        pass
    return {"discarded": True}


def link(directory, pairs):
    """A directory of hard links NAME -> TARGET, replacing what was there (so linking again heals a
    bundle whose file was replaced). Hard links, not symlinks: onnxruntime refuses external data
    whose real path leaves the model's directory. A copy where the filesystem has no hard links."""
    _make_directory(directory)
    for name, target in pairs:
        place = os.path.join(directory, name)
        temporary = place + ".linking"
        try:
            if os.path.lexists(temporary):
                os.remove(temporary)
            try:
                os.link(target, temporary)
            except OSError:
                shutil.copyfile(target, temporary)
            os.replace(temporary, place)
        except OSError as exc:
            raise StoreFailure("cannot link %s to %s: %s" % (place, target, exc.strerror or exc), EXIT_NO_LINK)
    return {"linked": len(pairs)}


def _command(argv):
    command, args = (argv[0], argv[1:]) if argv else ("", [])
    if command == "survey" and len(args) == 2:
        return survey(*args)
    if command == "receive" and len(args) in (5, 6):
        directory, name, offset, expected, record = args[:5]
        return receive(directory, name, int(offset), expected, record, int(args[5]) if len(args) > 5 else None)
    if command == "discard" and len(args) == 1:
        return discard(args[0])
    if command == "link" and args and len(args) % 2 == 1:
        return link(args[0], list(zip(args[1::2], args[2::2])))
    raise StoreFailure("usage: store survey|receive|discard|link ARGS (got %r)" % " ".join(argv), EXIT_USAGE)


def main(argv):
    try:
        report = _command(argv)
    except StoreFailure as failure:
        sys.stderr.write("edgebench: %s\n" % failure)
        return failure.code
    except ValueError as exc:  # a number that is not one
        sys.stderr.write("edgebench: %s\n" % exc)
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write("edgebench: %s\n" % exc)
        return EXIT_FAILED
    sys.stdout.write(json.dumps(report) + "\n")
    sys.stdout.flush()
    return 0
