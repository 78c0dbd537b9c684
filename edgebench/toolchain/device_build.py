"""Build llama.cpp's benchmark tools for a device: llama-bench, llama-perplexity and llama-fit-params with
their shared libraries, in one folder (`bin/`) whose binaries find their libraries beside them ($ORIGIN)
wherever it is copied, plus the compiler runtime (libgomp) a device may lack.

Builds are cached under `cache_root()/device-engines/<key>`; the key hashes the source's identity, the
CMake flags, the target and the toolchain file, so a changed checkout or flag is a new build. A build
happens in a temporary folder beside the cache and is renamed into place only when complete, so nothing
half-built is ever a cache hit; its log stays in `device-engines/logs/<key>.log`.

    python -m edgebench.toolchain.device_build --facts probe.json [--source DIR] [--toolchain-file FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from edgebench.errors import EdgebenchError
from edgebench.paths import cache_root
from edgebench.runner.engine_build import BASE_SYSTEM, TOOLS, build_info, compiler_version, runtime_library
from edgebench.runner.engine_build import c_compiler as recorded_c_compiler
from edgebench.toolchain import elf
from edgebench.toolchain.cross import Compiler, compiler_for
from edgebench.toolchain.llama_cpp_source import vendored_llama_cpp
from edgebench.toolchain.llama_cpp_wheel import LLAMA_CPP_PYTHON
from edgebench.toolchain.source_identity import SourceIdentity, identify
from edgebench.toolchain.target import BuildTarget, target_from_probe

# the tools and the libraries they link, nothing else: no network code (curl, OpenSSL: a device would need
# their libraries too), no tests, examples or server; ccache off so the log shows what really compiled
ENGINE_FLAGS = ("-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
                "-DLLAMA_BUILD_COMMON=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_TESTS=OFF",
                "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DGGML_CCACHE=OFF",
                # linked with their final search path: the folder they sit in
                "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN")
MANIFEST = "build.json"
FORMAT = 1  # of the cache folder and its build.json; part of the key


@dataclass(frozen=True)
class EngineBuild:
    """A finished build: `directory/bin` holds the tools and every library they need; `files` maps each
    file name there to its sha256; `manifest` is directory/build.json."""

    directory: Path
    key: str
    files: dict[str, str]
    manifest: dict[str, Any]

    @property
    def bin(self) -> Path:
        return self.directory / "bin"


def engines_root() -> Path:
    return cache_root() / "device-engines"


def build_flags(target: BuildTarget) -> tuple[str, ...]:
    return (*ENGINE_FLAGS, *target.cmake_flags())


def build_key(source: SourceIdentity, flags: tuple[str, ...], target: BuildTarget, toolchain: str | None) -> str:
    """`toolchain`: the toolchain file's text (None: the controller's own compiler; "on-device": the device's)."""
    what = {"format": FORMAT, "source": source.identity, "flags": list(flags), "target": asdict(target),
            "toolchain": toolchain, "tools": list(TOOLS)}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def source_identity(source: Path | None) -> SourceIdentity:
    """A llama.cpp checkout's identity, or (None) that of the one the pinned llama-cpp-python vendors."""
    if source is None:
        return identify(vendored_llama_cpp(), use_git=False,
                        description=f"llama.cpp vendored in llama-cpp-python {LLAMA_CPP_PYTHON}")
    return identify(source)


def source_fields(identity: SourceIdentity) -> dict[str, Any]:
    """build.json's `source`."""
    return {"description": identity.description, "path": str(identity.path), "commit": identity.commit,
            "changed": identity.changed, "identity": identity.identity}


def build_engine(target: BuildTarget, *, source: Path | None = None, toolchain_file: str | Path | None = None,
                 log: Callable[[str], None] = print) -> EngineBuild:
    """The build of llama.cpp's tools for `target`, from the cache when an identical one was made before.
    `source`: a llama.cpp checkout (default: the one the pinned llama-cpp-python vendors);
    `toolchain_file`: a CMake toolchain file to build with (a device profile's `toolchain_file`)."""
    compiler = compiler_for(target, toolchain_file)
    identity = source_identity(source)
    flags = build_flags(target)
    key = build_key(identity, flags, target, compiler.toolchain_text)
    final = engines_root() / key
    if (final / MANIFEST).is_file():
        log(f"llama.cpp for {target.describe()} is already built: {final}")
        return load_build(final)
    log_path = engines_root() / "logs" / f"{key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log(f"building llama.cpp ({identity.description}) for {target.describe()} with {compiler.description}; "
        f"log: {log_path}")
    work = Path(tempfile.mkdtemp(prefix=f".building-{key}-", dir=engines_root()))
    try:
        started = time.monotonic()
        build_dir = _compile(identity.path, work, flags, compiler, log_path)
        out = work / "engine"
        files = collect(build_dir, out / "bin", c_compiler(build_dir, compiler), target.os)
        # the in-process engine (llama-cpp-python) runs this same llama.cpp only for the vendored source
        pinned = LLAMA_CPP_PYTHON if source is None else None
        manifest = _manifest(key, identity, pinned, flags, target, compiler, build_dir, out / "bin", files,
                             time.monotonic() - started)
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            out.rename(final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not another build of the same key finishing first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log(f"built in {manifest['build_seconds']:.0f} s: {final}")
    return load_build(final)


def load_build(directory: Path) -> EngineBuild:
    manifest = json.loads((directory / MANIFEST).read_text())
    return EngineBuild(directory, manifest["key"], dict(manifest["files"]), manifest)


def _compile(source: Path, work: Path, flags: tuple[str, ...], compiler: Compiler, log_path: Path) -> Path:
    build_dir = work / "build"
    configure = configure_argv(source, build_dir, flags, compiler, work)
    build = build_argv(build_dir)
    with open(log_path, "w") as out:
        for stage, argv in (("configuring", configure), ("compiling", build)):
            run_logged(argv, out, f"{stage} llama.cpp")
    return build_dir


def run_logged(argv: list[str], out, what: str, error: type[EdgebenchError] = EdgebenchError) -> None:
    """Run one build step into the open log `out`; a failure raises `error`, quoting the log's last error."""
    out.write(f"$ {' '.join(argv)}\n")
    out.flush()
    # in English and ASCII, so the error line a failure quotes reads the same everywhere
    done = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        out.flush()
        raise error(f"{what} failed with: {last_error(Path(out.name).read_text())} (the full log is {out.name})")


def configure_argv(source: Path, build_dir: Path, flags: tuple[str, ...], compiler: Compiler, work: Path) -> list[str]:
    """CMake's configure command (Ninja where there is one); a generated toolchain file is written to `work`."""
    toolchain: list[str] = []
    if compiler.toolchain_file is not None:
        toolchain = [f"-DCMAKE_TOOLCHAIN_FILE={compiler.toolchain_file}"]
    elif compiler.toolchain_text is not None:
        generated = work / "toolchain.cmake"
        generated.write_text(compiler.toolchain_text)
        toolchain = [f"-DCMAKE_TOOLCHAIN_FILE={generated}"]
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    return ["cmake", "-S", str(source), "-B", str(build_dir), *generator, *toolchain, *flags]


def build_argv(build_dir: Path) -> list[str]:
    return ["cmake", "--build", str(build_dir), "--target", *TOOLS, "-j", str(os.cpu_count() or 1)]


def last_error(log_text: str) -> str:
    """The log's last compiler `error:` line, else CMake's last error with its first line of reason."""
    lines = log_text.splitlines()
    compiler = [line.strip() for line in lines if re.search(r"\berror:", line, re.IGNORECASE)]
    if compiler:
        return compiler[-1]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("CMake Error"):
            reason = next((line.strip() for line in lines[index + 1:] if line.strip()), "")
            return f"{lines[index].strip()} {reason}".strip()
    return next((line.strip() for line in reversed(lines) if line.strip()), "no output")


def collect(build_dir: Path, out: Path, c_compiler: str | None, target_os: str) -> dict[str, Path]:
    """Copy the tools into `out` and, following their NEEDED entries, every library they need that the
    build made or the compiler links from its own library path, such as its OpenMP runtime (under the name
    they ask for); whatever else they need must be in the device's base system. Returns name -> source file."""
    made = {path.name: path for path in build_dir.rglob("lib*.so*") if path.is_file()}
    base_system = BASE_SYSTEM[target_os]
    out.mkdir(parents=True)
    collected: dict[str, Path] = {}
    wanted = [(tool, build_dir / "bin" / tool, "the build") for tool in TOOLS]
    while wanted:
        name, origin, needed_by = wanted.pop(0)
        if name in collected:
            continue
        if not origin.is_file():
            raise EdgebenchError(f"{needed_by} made no {name}")
        shutil.copyfile(origin, out / name)  # follows symlinks: one file under the name asked for
        (out / name).chmod(0o755)
        collected[name] = origin.resolve()
        for needed in elf.read_elf(out / name).needed:
            if needed in collected or base_system.fullmatch(needed):
                continue
            found = made.get(needed) or _path(runtime_library(c_compiler, needed))
            if found is None:
                raise EdgebenchError(f"{name} needs {needed}, which neither the build made nor the compiler "
                                     "can link, and a device's base system does not have it")
            wanted.append((needed, found, name))
    return collected


def _path(found: str | None) -> Path | None:
    return Path(found) if found else None


def _manifest(key: str, identity: SourceIdentity, pinned: str | None, flags: tuple[str, ...], target: BuildTarget,
              compiler: Compiler, build_dir: Path, bin_dir: Path, collected: dict[str, Path],
              seconds: float) -> dict[str, Any]:
    infos = {name: elf.read_elf(bin_dir / name) for name in collected}
    commit, number = build_info(build_dir)
    return {
        "format": FORMAT,
        "key": key,
        "source": source_fields(identity),
        "llama_cpp_python": pinned,
        "build_commit": commit,
        "build_number": number,
        "cmake_flags": list(flags),
        "target": asdict(target),
        "triple": target.triple,
        "compiler": compiler.description,
        "compiler_version": compiler_version(c_compiler(build_dir, compiler)),
        "toolchain_file": str(compiler.toolchain_file) if compiler.toolchain_file else None,
        "machine": sorted({info.machine for info in infos.values()}),
        # the newest C (and C++) library versions the files need: a device's must be at least these
        "glibc_needed": elf.newest([info.versions_needed.get("GLIBC") for info in infos.values()]),
        "glibcxx_needed": elf.newest([info.versions_needed.get("GLIBCXX") for info in infos.values()]),
        "files": {name: _sha256(bin_dir / name) for name in sorted(collected)},
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
    }


def c_compiler(build_dir: Path, compiler: Compiler) -> str | None:
    """The C compiler the build used: the one edgebench chose, else what CMake found (a toolchain file's
    compiler is not in CMakeCache.txt; CMake records it in CMakeFiles/<version>/CMakeCCompiler.cmake)."""
    if compiler.c_compiler:
        return compiler.c_compiler
    return recorded_c_compiler(str(build_dir))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--facts", required=True, type=Path, help="a device's probe facts as JSON")
    parser.add_argument("--source", type=Path, help="a llama.cpp checkout (default: the pinned vendored one)")
    parser.add_argument("--toolchain-file", type=Path, help="a CMake toolchain file to build with")
    args = parser.parse_args(argv)
    try:
        facts = json.loads(args.facts.read_text())
        built = build_engine(target_from_probe(facts), source=args.source, toolchain_file=args.toolchain_file,
                             log=lambda text: print(text, file=sys.stderr))
    except (OSError, ValueError) as error:
        print(f"error: cannot read {args.facts}: {error}", file=sys.stderr)
        return 2
    except EdgebenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    print(built.bin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
