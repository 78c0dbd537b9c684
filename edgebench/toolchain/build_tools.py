"""Whether this Python can build llama-cpp-python with the build tools it already has.

pip builds a source package in an isolated environment that it fills from the package index. A lab
host that installs from a local mirror or a wheelhouse often has no scikit-build-core there, and the
engine build stops at `No matching distribution found for scikit-build-core`. When this Python already
has what the build needs, edgebench builds with `--no-build-isolation`, which asks the index for
nothing but llama-cpp-python itself.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess

# what llama-cpp-python 0.3.36 asks for: its pyproject.toml's backend and its CMakeLists' minimum
SCIKIT_BUILD_CORE = "0.9.2"
CMAKE = "3.21"


def _numbers(version: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version or "")[:3])


def _at_least(version: str | None, minimum: str) -> bool:
    return bool(version) and _numbers(version) >= _numbers(minimum)


def _distribution(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _program_version(program: str) -> str | None:
    path = shutil.which(program)
    if not path:
        return None
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\d+\.\d+(\.\d+)?", done.stdout)
    return match[0] if done.returncode == 0 and match else None


def _cmake_versions() -> list[str]:
    # scikit-build-core takes the `cmake` package's binary if there is one, else the first on PATH
    return [found for found in (_distribution("cmake"), _program_version("cmake")) if found]


def missing() -> list[str]:
    """The build tools this Python lacks for llama-cpp-python, as pip requirements (empty: none)."""
    wanted = []
    if not _at_least(_distribution("scikit-build-core"), SCIKIT_BUILD_CORE):
        wanted.append(f"scikit-build-core>={SCIKIT_BUILD_CORE}")
    if not any(_at_least(found, CMAKE) for found in _cmake_versions()):
        wanted.append(f"cmake>={CMAKE}")
    # scikit-build-core falls back to make where there is no ninja
    if not (importlib.util.find_spec("ninja") or shutil.which("ninja") or shutil.which("make")):
        wanted.append("ninja")
    return wanted


def isolation_args(wanted: list[str]) -> list[str]:
    """pip's arguments for building with the tools that are here; none (an isolated build) while some lack."""
    return [] if wanted else ["--no-build-isolation"]


def offline_hint(wanted: list[str]) -> str:
    quoted = " ".join(f"'{requirement}'" for requirement in wanted)
    return (f"without a package index, install the build tools first (pip install {quoted}): "
            "install-engine then builds with them, without pip's isolated build environment")
