"""Build and install the llama.cpp engine (llama-cpp-python) with flags that run on this machine.

pip's default build compiles llama.cpp with `-march=native`, which turns on every instruction set
the CPU advertises. Some VMs advertise AMX without being able to run it (the hypervisor faults on
`tileloadd`), so a native build dies in llama.cpp's AMX kernel on every batch of more than one
token. On x86-64 edgebench therefore builds one portable x86-64-v3 engine (AVX2, FMA, F16C; no
AVX-512, no AMX) that runs wherever AVX2 does. Elsewhere (ARM laptops and boards, Apple) the native
build is kept: there `-mcpu=native` is probed feature by feature and has no such trap.

Only what the engine loads is built: libllama and libggml*. llama-cpp-python would also build libmtmd
(multimodal, `LLAVA_BUILD`) and llama.cpp's common library (which only llama.cpp's own tools link; see
engine_only.cmake); tests, examples, tools and the server are already off in a build as a subproject.
Where this Python has the build tools (build_tools.py), pip builds with them instead of fetching them
into an isolated environment, so a host without a package index for them can build too.

The wheel is cached under the edgebench cache, keyed by version, flags and that scope, because pip's own
wheel cache ignores CMAKE_ARGS and would hand back a wheel built with other flags. llama-bench, the
fidelity anchor, is built with the same flags (tests/perf/build_llama_bench.sh asks this module).

    python -m edgebench.toolchain.llama_cpp_wheel --cmake-args   # print the flags for this machine
    python -m edgebench.toolchain.llama_cpp_wheel --command      # print the pip command that builds the wheel
    python -m edgebench.toolchain.llama_cpp_wheel --install      # build once, install (also: edgebench install-engine)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.outputs import replacing
from edgebench.paths import cache_root
from edgebench.toolchain import build_tools

# the version the `llama` extra pins; pyproject.toml says the same (a test keeps them equal)
LLAMA_CPP_PYTHON = "0.3.36"
PORTABLE_X86 = "-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
FLAGS_ENV = "CMAKE_ARGS"
ENGINE_ONLY_CMAKE = Path(__file__).with_name("engine_only.cmake")


def default_cmake_args(machine: str | None = None) -> str:
    machine = (machine or platform.machine()).lower()
    return PORTABLE_X86 if machine in ("x86_64", "amd64", "i686", "x86") else ""


def cmake_args() -> str:
    """$CMAKE_ARGS when the user set it (their choice wins), else this machine's default."""
    return os.environ.get(FLAGS_ENV) or default_cmake_args()


def flags_key(version: str, flags: str) -> str:
    return hashlib.sha256(f"{version} {flags}".encode()).hexdigest()[:12]


def engine_only_args() -> str:
    """CMake flags that leave out what llama-cpp-python builds beyond the libraries it loads."""
    include = shlex.quote(f"-DCMAKE_PROJECT_llama.cpp_INCLUDE={ENGINE_ONLY_CMAKE}")
    return f"-DLLAVA_BUILD=OFF {include}"


def build_cmake_args(flags: str) -> str:
    # the machine's (or the user's) flags last: CMake keeps the last value, so `-DLLAVA_BUILD=ON` still wins
    return f"{engine_only_args()} {flags}".strip()


def wheel_dir(version: str = LLAMA_CPP_PYTHON, flags: str | None = None) -> Path:
    flags = cmake_args() if flags is None else flags
    # the scope by what it does (the include file's text), not by where edgebench is installed
    scope = f"-DLLAVA_BUILD=OFF {ENGINE_ONLY_CMAKE.read_text()}"
    return cache_root() / "wheels" / f"llama-cpp-python-{version}-{flags_key(version, f'{flags} {scope}')}"


def wheel_command(out: Path, version: str = LLAMA_CPP_PYTHON, flags: str | None = None,
                  wanted: list[str] | None = None) -> tuple[list[str], dict[str, str]]:
    """pip's command line and the environment it adds that build the wheel into `out`."""
    flags = cmake_args() if flags is None else flags
    wanted = build_tools.missing() if wanted is None else wanted
    argv = [sys.executable, "-m", "pip", "wheel", "--no-cache-dir", "--no-deps",
            *build_tools.isolation_args(wanted), f"llama-cpp-python=={version}", "-w", str(out)]
    return argv, {FLAGS_ENV: build_cmake_args(flags)}


def shown_command(flags: str | None = None) -> str:
    """The build command as a shell line, for `install-engine --print-command`."""
    argv, env = wheel_command(_partial(wheel_dir(flags=flags)), flags=flags)
    return " ".join([*(f"{name}={shlex.quote(value)}" for name, value in env.items()), shlex.join(argv)])


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args])
    if done.returncode != 0:
        raise EdgebenchError(f"pip {args[0]} failed (exit {done.returncode}); its output above says why")


def build_wheel(version: str = LLAMA_CPP_PYTHON, flags: str | None = None, log=print) -> Path:
    """The cached wheel for these flags, built first if it is not there yet."""
    flags = cmake_args() if flags is None else flags
    target = wheel_dir(version, flags)
    found = sorted(target.glob("llama_cpp_python-*.whl"))
    if found:
        return found[0]
    partial = _partial(target)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    wanted = build_tools.missing()
    argv, env = wheel_command(partial, version, flags, wanted)
    tools = "pip's isolated build environment" if wanted else "the build tools installed here"
    log(f"building llama-cpp-python {version} with CMAKE_ARGS={flags!r} and {tools} "
        "(about 8 minutes of CPU time: some 5 minutes on two idle cores)")
    done = subprocess.run(argv, env={**os.environ, **env})
    if done.returncode != 0:
        hint = f"; {build_tools.offline_hint(wanted)}" if wanted else ""
        raise EdgebenchError(f"pip wheel failed (exit {done.returncode}); its output above says why{hint}")
    with replacing(target) as whole:
        partial.rename(whole)
    return sorted(target.glob("llama_cpp_python-*.whl"))[0]


def installed_version() -> str | None:
    try:
        from importlib.metadata import version
        return version("llama_cpp_python")
    except Exception:
        return None


def install(flags: str | None = None, log=print) -> Path:
    wheel = build_wheel(flags=flags, log=log)
    # out first, so pip cannot keep an installed build of the same version made with other flags;
    # then in with its dependencies, which pip installs only where they are missing
    if installed_version():
        _pip("uninstall", "--quiet", "--yes", "llama-cpp-python")
    _pip("install", "--quiet", str(wheel))
    log(f"installed {wheel.name} (CMAKE_ARGS={cmake_args() if flags is None else flags!r})")
    return wheel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--cmake-args", action="store_true", help="print the CMake flags for this machine")
    what.add_argument("--install", action="store_true", help="build (once) and install llama-cpp-python")
    what.add_argument("--key", action="store_true", help="print a short key of the version and flags")
    what.add_argument("--command", action="store_true", help="print the pip command that builds the wheel")
    args = parser.parse_args(argv)
    if args.cmake_args:
        print(cmake_args())
    elif args.key:
        print(flags_key(LLAMA_CPP_PYTHON, cmake_args()))
    elif args.command:
        print(shown_command())
    else:
        try:
            install(log=lambda text: print(text, file=sys.stderr))
        except EdgebenchError as error:
            print(f"error: {error}", file=sys.stderr)
            return 3
    return 0


def pinned_in(pyproject_text: str) -> str | None:
    match = re.search(r'"llama-cpp-python==([^"]+)"', pyproject_text)
    return match[1] if match else None


if __name__ == "__main__":
    sys.exit(main())
