"""Put a llama.cpp built for a device (toolchain/device_build.py) on it: `edgebench install-engine -d`.

The build travels as one archive (bin/, python/ when the bindings fit it, build.json) through the
model store, so it is content-addressed, verified and resumable like a model, and a second device of
the same kind reuses the archive made for the first. The device unpacks it, checks that its
llama-bench starts there, and only then switches `<workdir>/engine` to it (runner/engine_unpack.py);
the runner finds it there (runner/engines/installed.py).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError, TransportError
from edgebench.file_hashes import sha256_file
from edgebench.outputs import replacing, write_whole
from edgebench.transport.output_polling import helper_argv, run_to_end
from edgebench.transport.remote_store import PushResult, RemoteStore, install_runner

# the parts of llama-cpp-python the in-process runner imports (its package __init__ is never run there)
BINDING_FILES = ("llama_cpp.py", "_ctypes_extensions.py", "_ggml.py")
ENGINE_STORE = "engine-files"  # beside models/: never evicted to make room for a model
_EXIT_CANNOT_RUN = 5  # engine_unpack.EXIT_CANNOT_RUN


class EngineCannotRun(EdgebenchError):
    """The build does not start on the device; nothing was switched."""


@dataclass(frozen=True)
class InstalledEngine:
    path: str
    archive: PushResult
    build: dict
    bindings: bool


def bindings_folder(version: str | None) -> tuple[Path | None, str | None]:
    """This controller's llama-cpp-python package when it binds the build (same version), else why not."""
    if not version:
        return None, ("the source is not the llama.cpp that llama-cpp-python pins, so its bindings would not "
                      "match; the llama-bench engine runs it")
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None, "llama-cpp-python is not installed on the controller (edgebench install-engine)"
    from importlib.metadata import version as installed_version
    have = installed_version("llama_cpp_python")
    if have != version:
        return None, f"the controller's llama-cpp-python is {have}, the build is llama.cpp of {version}"
    return Path(list(spec.submodule_search_locations)[0]), None


def _add(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    # fixed owner and time: the same build makes the same archive, so a second device skips nothing twice
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, 0, 0, 0
    archive.addfile(info, io.BytesIO(data))


def _add_bindings(archive: tarfile.TarFile, bindings: Path) -> None:
    for name in BINDING_FILES:
        _add(archive, f"python/llama_cpp/{name}", (bindings / name).read_bytes())
    _add(archive, "python/llama_cpp/__init__.py", b"")  # the runner imports llama_cpp.llama_cpp alone


def bindings_archive(version: str | None) -> tuple[Path | None, str | None]:
    """The Python bindings alone, as an archive beside the device builds (for a build made on the device),
    or None and why they do not bind it."""
    from edgebench.toolchain.device_build import engines_root

    bindings, why_not = bindings_folder(version)
    if bindings is None:
        return None, why_not
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        _add_bindings(archive, bindings)
    data = buffer.getvalue()
    path = engines_root() / "bindings" / f"llama-cpp-python-{version}-{hashlib.sha256(data).hexdigest()[:16]}.tar"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, data)
    return path, None


def engine_archive(build) -> tuple[Path, bool]:
    """The build's archive (made once beside it) and whether it carries the Python bindings."""
    manifest = dict(build.manifest)
    bindings, why_not = bindings_folder(manifest.get("llama_cpp_python"))
    manifest["in_process_unavailable"] = why_not
    path = build.directory / ("engine.tar" if bindings else "engine-bench-only.tar")
    if path.exists():
        return path, bindings is not None
    with replacing(path) as partial, tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
        for file in sorted((build.directory / "bin").iterdir()):
            _add(archive, f"bin/{file.name}", file.read_bytes(), 0o755)
            # libllama.so beside libllama.so.0: the names loaders look for (llama-cpp-python, ggml_libs.py)
            if ".so." in file.name:
                alias = tarfile.TarInfo(f"bin/{file.name.split('.so.')[0]}.so")
                alias.type, alias.linkname, alias.mtime = tarfile.SYMTYPE, file.name, 0
                archive.addfile(alias)
        if bindings:
            _add_bindings(archive, bindings)
        _add(archive, "build.json", (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return path, bindings is not None


def install_engine(transport, build, progress=None, link: str | None = None) -> InstalledEngine:
    """Push the build's archive and install it on the device; raises EngineCannotRun when it does not start.
    `link`: where under the workdir to link it instead of switching `<workdir>/engine` (a commit's build)."""
    archive, bindings = engine_archive(build)
    runner = install_runner(transport)
    store = RemoteStore(transport, runner, area=ENGINE_STORE, evict=False)
    sha256 = sha256_file(archive)
    pushed = store.push(archive, sha256, progress=progress)
    # named by the build and by what was pushed: another archive of one build (with or without the bindings)
    # is installed beside it, never mistaken for it
    folder = f"{build.key}-{sha256[:8]}"
    argv = helper_argv(transport, runner, "engine", "install", pushed.path, transport.workdir_path(), folder,
                       *([link] if link else []))
    done = run_to_end(transport, argv, "the engine's install", timeout_s=600)
    return install_result(transport, done, build.manifest.get("triple"), pushed, bindings)


def install_result(transport, done, triple: str | None, pushed: PushResult, bindings: bool) -> InstalledEngine:
    """What the device's `engine install` (or install-built) said, or the one sentence of why it did not."""
    code, out, err = done
    report = _last_json(out)
    name = transport.device.name
    if code == _EXIT_CANNOT_RUN:
        raise EngineCannotRun(f"{name}: the engine built for {triple} does not start "
                              f"there ({report.get('cannot_run')}); the previous engine, if any, stays")
    if code != 0 or "path" not in report:
        raise TransportError(f"{name}: installing the engine failed (exit {code}): {(err or out).strip()[-400:]}")
    return InstalledEngine(report["path"], pushed, report["build"], bindings)


def _last_json(out: str) -> dict:
    for line in reversed(out.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        return found if isinstance(found, dict) else {}
    return {}
