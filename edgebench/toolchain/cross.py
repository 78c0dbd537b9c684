"""Which compiler builds llama.cpp for a device: a CMake toolchain file the device profile names (the
Android NDK's), the controller's own compiler when the device has the controller's architecture and OS,
or else Debian's cross gcc for the device's triple, through a generated toolchain file.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError
from edgebench.toolchain.target import ARCH_NAMES, BuildTarget

# Debian names its cross compiler packages after the triple, with '_' spelled '-'
DEBIAN_CROSS = {"aarch64": "aarch64-linux-gnu", "armv7l": "arm-linux-gnueabihf", "x86_64": "x86_64-linux-gnu"}
# CMAKE_SYSTEM_PROCESSOR as CMake's own platform files and ggml's arch detection expect it
CMAKE_PROCESSOR = {"aarch64": "aarch64", "armv7l": "armv7-a", "x86_64": "x86_64"}
NDK_HINT = ("set `toolchain_file:` in the device profile to the Android NDK's "
            "build/cmake/android.toolchain.cmake")


@dataclass(frozen=True)
class Compiler:
    """How CMake is to compile for a target. `toolchain_text` is the toolchain file's content (given or
    generated; None for the controller's own compiler), which a build writes out and keys its cache on;
    `toolchain_file` is the profile's file, which CMake reads in place (it may include files beside it)."""

    description: str
    toolchain_text: str | None = None
    toolchain_file: Path | None = None
    c_compiler: str | None = None


def controller_arch() -> str:
    machine = platform.machine().lower()
    return ARCH_NAMES.get(machine, machine)


def compiler_for(target: BuildTarget, toolchain_file: str | Path | None = None, *,
                 search_path: str | None = None) -> Compiler:
    """The compiler for `target`; `search_path` is the PATH to find cross compilers on (default: $PATH)."""
    if toolchain_file is not None:
        path = Path(toolchain_file).expanduser()
        if not path.is_file():
            raise EdgebenchError(f"the toolchain file {path} (the device profile's toolchain_file) does not exist")
        return Compiler(f"the toolchain file {path}", toolchain_text=path.read_text(), toolchain_file=path.resolve())
    if target.os == "android":
        raise EdgebenchError(f"building llama.cpp for Android needs the NDK's compiler: {NDK_HINT}")
    if target.arch == controller_arch() and target.libc == "glibc" and platform.system() == "Linux":
        return Compiler("this machine's own compiler")
    if target.libc != "glibc":
        raise EdgebenchError(f"edgebench knows no cross compiler for {target.triple}: name a CMake toolchain file "
                             "for it as `toolchain_file:` in the device profile")
    triple = DEBIAN_CROSS[target.arch]
    cc, cxx = (shutil.which(f"{triple}-{tool}", path=search_path) for tool in ("gcc", "g++"))
    if not (cc and cxx):
        package = triple.replace("_", "-")
        raise EdgebenchError(f"no {triple} cross compiler is installed here: install it with `apt-get install "
                             f"gcc-{package} g++-{package}` or name a CMake toolchain file as `toolchain_file:` "
                             "in the device profile")
    return Compiler(f"Debian's {triple} cross gcc", toolchain_text=cross_toolchain(target, cc, cxx), c_compiler=cc)


def cross_toolchain(target: BuildTarget, cc: str, cxx: str) -> str:
    """A CMake toolchain file for a gcc cross compiler. Libraries and headers are looked up only in the
    compiler's own sysroot (the controller's x86 libraries would link and fail), programs only on the
    controller (the build runs them there)."""
    return "\n".join([
        "set(CMAKE_SYSTEM_NAME Linux)",
        f"set(CMAKE_SYSTEM_PROCESSOR {CMAKE_PROCESSOR[target.arch]})",
        f"set(CMAKE_C_COMPILER {cc})",
        f"set(CMAKE_CXX_COMPILER {cxx})",
        "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
        "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
        "",
    ])
