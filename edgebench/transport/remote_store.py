"""The push protocol: what a device needs from the controller's disk, placed in its store.

    <workdir>/runner/<sha256>/runner.pyz      the runner zipapp
    <workdir>/models/<sha256>/<file>          a model, named by the sha256 of its bytes
    <workdir>/models/<sha256>/manifest.json   what is there; its mtime is the last use (for LRU)
    <workdir>/models/<sha256>/.partial        an upload in progress, never under the final name
    <workdir>/bundles/<sha256>/<file>...      a model and its external data side by side (hard links)
                                              (dropped when an eviction removes a file they link to)

The controller decides, the device does: the device's half is the runner's
`store` mode (runner/device_store.py), run by the device's Python with every
path passed as an argument. An upload streams into `.partial` while the
device hashes what it writes; it is renamed into place only when the device's
hash equals the controller's. A dropped upload resumes from the partial
file's size, and the hash still covers the whole file. Each push is two
device commands: a survey (stored? else resume from where, and is there
room) and the upload, which also renames, records and evicts.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import posixpath
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import DiskFullError, ModelFileError, TransportError
from edgebench.file_hashes import sha256_file
from edgebench.toolchain.runner_zipapp import runner_bytes, runner_sha256
from edgebench.transport.output_polling import helper_argv, run_to_end

# room left beside a model on the device for results and the OS
FREE_MARGIN_BYTES = 64 << 20
_EXIT_DISK_FULL = 28  # device_store.EXIT_DISK_FULL


@dataclass(frozen=True)
class Evicted:
    """A model the device's cache dropped (least recently used) to stay under max_cache_gb."""

    sha256: str
    file: str
    size: int


@dataclass(frozen=True)
class PushResult:
    """Where a model is on the device and what it took to put it there."""

    path: str
    sent_bytes: int
    skipped: bool
    resumed_from: int = 0
    evicted: tuple[Evicted, ...] = ()


def install_runner(transport) -> str:
    """Make the runner zipapp present on the device; its path there.

    The store's device half is a mode of the runner, so the runner itself cannot come through
    the store: it is the bootstrap. It goes by the two plainest primitives instead, and runs
    nothing on the device: read what lies at its place (it is small) and compare the sha256 here;
    when that differs, put the bytes (the transport renames them into place whole) and read them
    back to check. Concurrent controllers only write the same bytes under the same name."""
    data, sha256 = runner_bytes(), runner_sha256()
    path = transport.workdir_path("runner", sha256, "runner.pyz")
    if _sha256(transport.read_file(path, len(data) + 1)) == sha256:
        return path
    transport.put_bytes(path, data)
    if _sha256(transport.read_file(path, len(data) + 1)) != sha256:
        raise TransportError(f"{transport.device.name}: the runner written to {path} does not read back as written")
    return path


def _sha256(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def push_model(transport, local_path: str, sha256: str, progress=None, extra_files=(),
               runner: str | None = None) -> PushResult:
    """Make the model present on the device (verified, resumable, skipped if there). With
    extra_files (an ONNX model's external data) `sha256` names the bundle, and the files sit side
    by side under their own names. `runner`: its path on the device, when already installed."""
    if transport.reads_controller_files:
        return PushResult(path=str(Path(local_path).resolve()), sent_bytes=0, skipped=True)

    def report(done, total):
        if transport.cancelled:
            raise KeyboardInterrupt  # the partial stays: the next push resumes it
        if progress:
            progress(done, total)
    store = RemoteStore(transport, runner or install_runner(transport))
    if not extra_files:
        return store.push(Path(local_path), sha256, progress=report)
    return store.push_bundle(Path(local_path), tuple(Path(p) for p in extra_files), sha256, report)


class RemoteStore:
    """The controller's half of the store on one device, over any transport's primitives."""

    def __init__(self, transport, runner: str, area: str = "models", evict: bool = True):
        """`area`: the folder under the workdir; `evict`: whether the device's max_cache_gb applies there
        (models; not the engines, which a model must never push out)."""
        self.transport, self.runner, self.area = transport, runner, area
        self.device = transport.device.name
        max_cache_gb = transport.device.max_cache_gb
        self.max_cache_bytes = int(max_cache_gb * 2**30) if max_cache_gb and evict else None

    def _argv(self, command: str, *args) -> list[str]:
        return helper_argv(self.transport, self.runner, "store", command, *args)

    def _ask(self, command: str, *args) -> dict:
        """One store command run to its end; its JSON report."""
        code, out, err = run_to_end(self.transport, self._argv(command, *args), f"the store's {command}")
        if code != 0:
            raise TransportError(f"{self.device}: store {command} failed (exit {code}): {_reason(err or out)}")
        return _report(out)

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
        directory = self.transport.workdir_path("bundles", bundle_sha256)
        self._ask("link", directory, *links)
        return PushResult(posixpath.join(directory, main.name), sent, skipped=sent == 0, evicted=tuple(evicted))

    def push(self, local: Path, sha256: str, progress=None) -> PushResult:
        name, size = local.name, local.stat().st_size
        directory = self.transport.workdir_path(self.area, sha256)
        final = posixpath.join(directory, name)
        state = self._ask("survey", directory, name)
        if _stored(state, sha256):
            return PushResult(final, 0, skipped=True)
        offset = self._room(state, size)
        record = json.dumps({"sha256": sha256, "size": size, "file": name,
                             "pushed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        received = self._upload(local, directory, offset, sha256, record, progress)
        if received.get("sha256") != sha256 and offset:
            # the partial we resumed from was not a prefix of this file: start over once
            received = self._upload(local, directory, 0, sha256, record, progress)
            offset = 0
        if received.get("sha256") != sha256:
            self._ask("discard", directory)
            raise ModelFileError(f"{self.device}: sha256 of the uploaded {name} is "
                                 f"{received.get('sha256') or 'missing'}, expected {sha256}; "
                                 f"the partial upload was removed")
        evicted = tuple(Evicted(**entry) for entry in received.get("evicted") or ())
        return PushResult(final, size - offset, skipped=False, resumed_from=offset, evicted=evicted)

    def _room(self, state: dict, size: int) -> int:
        """The offset to resume from, once it is clear the rest fits."""
        offset = state.get("partial") or 0
        if offset > size:
            offset = 0  # a partial longer than the file belongs to something else: overwrite it
        free = state.get("free")
        needed = size - offset + FREE_MARGIN_BYTES
        if free is not None and free < needed:
            raise DiskFullError(f"{self.device}: not enough space in {self.transport.workdir_path()}: "
                                f"{free / 2**20:.0f} MiB free, {needed / 2**20:.0f} MiB needed")
        return offset

    def _upload(self, local: Path, directory: str, offset: int, sha256: str, record: str, progress) -> dict:
        budget = [self.max_cache_bytes] if self.max_cache_bytes else []
        argv = self._argv("receive", directory, local.name, offset, sha256, record, *budget)
        code, out, err = self.transport.pipe_file(argv, local, offset, progress)
        if code == _EXIT_DISK_FULL or "No space left" in err:
            self._ask("discard", directory)
            raise DiskFullError(f"{self.device}: the device ran out of space while receiving {local.name}; "
                                f"the partial upload was removed")
        if code != 0:
            raise TransportError(f"{self.device}: receiving {local.name} failed (exit {code}): {_reason(err)[-500:]}")
        return _report(out)


def _stored(state: dict, sha256: str) -> bool:
    """The manifest names this content and the file is as long as it says."""
    manifest, size = state.get("manifest"), state.get("size")
    return isinstance(manifest, dict) and manifest.get("sha256") == sha256 and size is not None \
        and manifest.get("size") == size


def _report(out: str) -> dict:
    lines = out.strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else {}
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _reason(err: str) -> str:
    return err.strip().removeprefix("edgebench: ")
