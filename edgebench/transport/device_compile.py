"""`edgebench install-engine -d DEVICE --on-device`: llama.cpp built on the device itself, with its own
cmake and compiler, where no cross compiler fits. The device's half is the runner's `engine build`
(runner/engine_build.py).

The build uses the flags a cross build would (the probe's CPU features spelled out, never `native`) and is
keyed like one, with "on-device" as its toolchain; it is cached on the device, so a second install builds
nothing and sends nothing but the small bindings. The source travels trimmed to what the build reads, as
one reproducible archive through the engine store (content-addressed, verified, resumable). A dropped
connection or Ctrl-C stops the compiler jobs; the next call goes on from what they finished.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from edgebench.errors import ConnectionLost, EdgebenchError, TransportError
from edgebench.file_hashes import sha256_file
from edgebench.outputs import replacing
from edgebench.toolchain import device_build
from edgebench.toolchain.device_build import build_flags, build_key, engines_root, last_error, source_identity
from edgebench.toolchain.llama_cpp_wheel import LLAMA_CPP_PYTHON
from edgebench.toolchain.source_identity import SourceIdentity, build_inputs, git_build_info
from edgebench.toolchain.target import BuildTarget
from edgebench.transport.engine_push import ENGINE_STORE, InstalledEngine, bindings_archive, install_result
from edgebench.transport.output_polling import POLL_S, Lines, TextOutput, helper_argv, run_to_end
from edgebench.transport.remote_store import PushResult, RemoteStore, install_runner

ON_DEVICE = "on-device"  # the toolchain part of the build key
# besides what no build reads (source_identity), what these flags never configure: tests, examples,
# the server and its web UI
NOT_SENT = {"tests", "examples", "pocs", "benches", "tools/server", "tools/ui"}
_EXIT_MISSING = 6  # engine_build.EXIT_MISSING


@dataclass(frozen=True)
class DeviceBuild:
    key: str
    path: str  # the build's folder on the device
    manifest: dict
    cached: bool


def source_archive(identity: SourceIdentity) -> Path:
    """The source's build inputs as one .tar.gz, made once per source identity: fixed order, owner and
    times, so the same source is the same archive (and a device that has it is sent nothing)."""
    name = hashlib.sha256(identity.identity.encode()).hexdigest()[:16]
    path = engines_root() / "sources" / f"llama.cpp-{name}.tar.gz"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    root = identity.path
    with replacing(path) as partial, open(partial, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for file in sorted(build_inputs(root)):
            relative = file.relative_to(root).as_posix()
            if relative.split("/", 1)[0] in NOT_SENT or "/".join(relative.split("/")[:2]) in NOT_SENT:
                continue
            info = tarfile.TarInfo(relative)
            info.size, info.mode, info.mtime = file.stat().st_size, 0o644, 0
            with open(file, "rb") as data:
                archive.addfile(info, data)
    return path


def _missing_sentence(device: str, lacking: list[str], termux: bool) -> str:
    install = "`pkg install cmake clang make` in Termux" if termux else \
        "`sudo apt install cmake g++ make` on Debian or Raspberry Pi OS, `pkg install cmake clang make` in Termux"
    them = "it" if len(lacking) == 1 else "them"
    return (f"{device} has no {' and no '.join(lacking)} to build llama.cpp with: install {them} there ({install}), "
            f"or leave out --on-device to cross-compile here")


class _Build:
    """One `engine build` run on the device, read as it goes."""

    def __init__(self, transport, runner: str, log: Callable[[str], None]):
        self.transport, self.runner, self.log = transport, runner, log
        self.name = transport.device.name

    def run(self, archive: str, key: str, spec: dict) -> tuple[int, dict]:
        argv = helper_argv(self.transport, self.runner, "engine", "build", archive, key, json.dumps(spec))
        process = self.transport.start(argv)  # its stdin stays open: its end tells the device to stop
        output, lines, pid, report, shown = TextOutput(process), Lines(), None, {}, -1
        try:
            while not output.ended:
                if self.transport.cancelled:
                    raise KeyboardInterrupt
                text, _errors = output.poll(POLL_S)
                for line in lines.feed(text):
                    event = _json(line)
                    pid = event.get("pid", pid)
                    if "stage" in event:
                        self.log(f"{self.name}: {event['stage']}")
                    elif "progress" in event:
                        done, total = event["progress"]
                        if done * 10 // max(total, 1) != shown:  # every tenth of the way
                            shown = done * 10 // max(total, 1)
                            self.log(f"{self.name}: compiled {done}/{total}" if total != 100 else
                                     f"{self.name}: compiled {done}%")
                    elif event:
                        report = event
            code, _signal = process.wait()
        except KeyboardInterrupt:
            process.kill(group=pid)
            self.log(f"{self.name}: the build stopped; run the same command again to go on from where it stopped")
            raise
        except ConnectionLost as lost:
            raise TransportError(f"{self.name}: the connection dropped during the build ({lost}): run the same "
                                 "command again, it goes on from where the build stopped") from lost
        except BaseException:
            process.kill(group=pid)
            raise
        finally:
            process.close()
        return (code if code is not None else -1), report


def build_on_device(transport, target: BuildTarget, *, source: Path | None = None, termux: bool = False,
                    log: Callable[[str], None] = print) -> DeviceBuild:
    """The device's own build of llama.cpp for `target`, from its cache when it was built there before."""
    name = transport.device.name
    identity = source_identity(source)
    flags = build_flags(target)
    key = build_key(identity, flags, target, ON_DEVICE)
    commit, number = git_build_info(identity.path)
    spec = {"flags": list(flags), "commit": commit, "number": number, "manifest": {
        "format": device_build.FORMAT, "key": key, "source": device_build.source_fields(identity),
        # the in-process engine (llama-cpp-python) runs this same llama.cpp only for the vendored source
        "llama_cpp_python": LLAMA_CPP_PYTHON if source is None else None,
        "cmake_flags": list(flags), "target": asdict(target), "triple": target.triple}}
    runner = install_runner(transport)
    build = _Build(transport, runner, log)
    code, report = build.run("-", key, spec)  # only a look in the device's cache: no source sent for a hit
    if report.get("absent"):
        archive = source_archive(identity)
        store = RemoteStore(transport, runner, area=ENGINE_STORE, evict=False)
        pushed = store.push(archive, sha256_file(archive))
        sent = "already there" if pushed.skipped else f"{pushed.sent_bytes / 1e6:.1f} MB sent"
        log(f"{name}: llama.cpp source ({identity.description}) on the device ({sent}); building it there with "
            f"{' '.join(target.cmake_flags())}")
        code, report = build.run(pushed.path, key, spec)
    if code == _EXIT_MISSING:
        raise EdgebenchError(_missing_sentence(name, report.get("missing") or ["cmake"], termux))
    if "failed" in report:
        raise EdgebenchError(_failure_sentence(transport, key, report))
    if code != 0 or "built" not in report:
        raise TransportError(f"{name}: the build on the device ended without a result (exit {code}): {report}")
    manifest = report["manifest"]
    if report["cached"]:
        log(f"{name}: llama.cpp for {target.describe()} is already built there: {report['built']}")
    else:
        log(f"{name}: built in {manifest.get('build_seconds', 0):.0f} s: {report['built']}")
    return DeviceBuild(key, report["built"], manifest, report["cached"])


def _failure_sentence(transport, key: str, report: dict) -> str:
    """The failed stage, the log's last error line, and where the log is, there and fetched here."""
    name, remote = transport.device.name, report.get("log")
    local = engines_root() / "logs" / f"{key}-on-{name}.log"
    text = ""
    try:
        data = transport.read_file(remote, 64 << 20) if remote else None
        if data is not None:
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
            text = data.decode(errors="replace")
    except (TransportError, OSError):
        data = None
    error = report.get("error") or (last_error(text) if text else "no log")
    fetched = f", fetched to {local}" if data is not None else ""
    return (f"building llama.cpp on {name} failed while {report['failed']} with: {error} (the log is {remote} "
            f"on the device{fetched})")


def install_device_build(transport, build: DeviceBuild) -> InstalledEngine:
    """Install a build made on the device into its workdir, as a pushed one is (engines/<key>-..., the
    `engine` link switched once its llama-bench starts), with the Python bindings when they bind it."""
    bindings, why_not = bindings_archive(build.manifest.get("llama_cpp_python"))
    runner = install_runner(transport)
    # named by the build and by what is added to it: with or without the bindings, beside each other
    digest = hashlib.sha256(json.dumps(why_not).encode())
    pushed = PushResult(build.path, 0, skipped=True)
    if bindings is not None:
        sha256 = sha256_file(bindings)
        pushed = RemoteStore(transport, runner, area=ENGINE_STORE, evict=False).push(bindings, sha256)
        digest.update(sha256.encode())
    extra = [pushed.path] if bindings is not None else []
    fields = {"in_process_unavailable": why_not}
    folder = f"{build.key}-{digest.hexdigest()[:8]}"
    argv = helper_argv(transport, runner, "engine", "install-built", build.path, transport.workdir_path(), folder,
                       json.dumps(fields), *extra)
    done = run_to_end(transport, argv, "the engine's install", timeout_s=600)
    return install_result(transport, done, build.manifest.get("triple"), pushed, bindings is not None)


def _json(line: str) -> dict:
    try:
        found = json.loads(line)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}

