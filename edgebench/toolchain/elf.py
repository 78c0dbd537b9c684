"""What a built ELF file needs, read with binutils' readelf (which reads every architecture's ELF, so a
cross-built binary is read on the controller): its machine, NEEDED libraries, SONAME, RPATH/RUNPATH and
the symbol versions it needs from each library (GLIBC_2.34, GLIBCXX_3.4.30, ...)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError

_DYNAMIC = re.compile(r"\((NEEDED|SONAME|RPATH|RUNPATH)\)\s+[^\[]*\[(.*)\]")
_MACHINE = re.compile(r"^\s*Machine:\s*(.+?)\s*$", re.MULTILINE)
_VERSION_NEED = re.compile(r"Name: ([A-Za-z_+]+)_(\d+(?:\.\d+)*)\b")


@dataclass(frozen=True)
class ElfInfo:
    machine: str  # as readelf names it: "AArch64", "Advanced Micro Devices X86-64", "ARM"
    needed: tuple[str, ...]
    soname: str | None
    runpath: str | None  # RUNPATH, else RPATH: where the loader looks first
    # symbol-version family -> the highest version needed, e.g. {"GLIBC": "2.34", "GLIBCXX": "3.4.30"}
    versions_needed: dict[str, str]


def read_elf(path: Path) -> ElfInfo:
    header, dynamic, versions = (_readelf(option, path) for option in ("-h", "-d", "-V"))
    machine = _MACHINE.search(header)
    entries = _DYNAMIC.findall(dynamic)
    paths = {kind: value for kind, value in entries if kind in ("RPATH", "RUNPATH")}
    return ElfInfo(
        machine=machine[1] if machine else "unknown",
        needed=tuple(value for kind, value in entries if kind == "NEEDED"),
        soname=next((value for kind, value in entries if kind == "SONAME"), None),
        runpath=paths.get("RUNPATH", paths.get("RPATH")),
        versions_needed=highest_versions(versions),
    )


def highest_versions(version_text: str) -> dict[str, str]:
    """The highest version of each family in readelf -V's "Version needs" entries."""
    best: dict[str, tuple[int, ...]] = {}
    for family, number in _VERSION_NEED.findall(version_text):
        parsed = tuple(int(part) for part in number.split("."))
        if parsed > best.get(family, ()):
            best[family] = parsed
    return {family: ".".join(map(str, number)) for family, number in sorted(best.items())}


def newest(versions: list[str | None]) -> str | None:
    known = [tuple(int(p) for p in v.split(".")) for v in versions if v]
    return ".".join(map(str, max(known))) if known else None


def _readelf(option: str, path: Path) -> str:
    readelf = shutil.which("readelf")
    if readelf is None:
        raise EdgebenchError("readelf is not installed here, and checking a build's libraries needs it: "
                             "install binutils")
    done = subprocess.run([readelf, "-W", option, str(path)], capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C"})
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise EdgebenchError(f"readelf could not read {path}: {said}")
    return done.stdout
