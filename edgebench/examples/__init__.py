"""The example profiles and device profiles, shipped inside the package for `edgebench init`.

The repository's profiles/ and devices/ stay the one copy: `profiles` and each `devices/*.yaml`
here are symbolic links to them (local, and the rpi5, pixel8, jetson-orin-nano and laptop examples
the README's commands name). setuptools follows the links when it builds
a wheel or an sdist, so the files themselves ship as package data (pyproject.toml,
[tool.setuptools.package-data]); a clone reads them through the links. No build step copies them
and no test has to keep two copies equal.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path, PurePosixPath

PROFILES = "profiles"
DEVICES = "devices"
LOCAL_DEVICE = "devices/local.yaml"


def _root():
    return files(__name__)


def _yaml_names(folder: str) -> list[str]:
    return sorted(p.name for p in _root().joinpath(folder).iterdir() if p.name.endswith(".yaml"))


def profile_names() -> list[str]:
    return _yaml_names(PROFILES)


def shipped_files() -> list[str]:
    """Relative paths (POSIX) of everything `init` writes, in the order it writes them: the local
    device first, the example devices, then the profiles."""
    devices = [f"{DEVICES}/{name}" for name in _yaml_names(DEVICES) if f"{DEVICES}/{name}" != LOCAL_DEVICE]
    return [LOCAL_DEVICE, *devices] + [f"{PROFILES}/{name}" for name in profile_names()]


def read(relative: str) -> str:
    return _root().joinpath(*PurePosixPath(relative).parts).read_text(encoding="utf-8")


def is_shipped_profile(path: str | os.PathLike) -> bool:
    """Whether a profile path the user gave names one of the examples (by its file name)."""
    return Path(path).name in profile_names()


def write_examples(dest: Path, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the examples under `dest`; keep a file that is already there unless `force`.
    Returns (written, kept)."""
    from edgebench.outputs import output_folder, write_output

    output_folder(dest, "folder for the examples")
    written, kept = [], []
    for relative in shipped_files():
        target = dest.joinpath(*PurePosixPath(relative).parts)
        if target.exists() and not force:
            kept.append(target)
            continue
        output_folder(target.parent, "folder for the examples")
        write_output(target, read(relative), "example")
        written.append(target)
    return written, kept
