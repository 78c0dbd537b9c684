"""Named baselines: a copy of a run kept under `<results>/baselines/<name>/` for later gates.

A copy, not a link, so that cleaning up old runs never removes what CI compares
against; it is put in place whole (copied beside, then renamed).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from edgebench.errors import EdgebenchError, ResultsError
from edgebench.outputs import replacing
from edgebench.paths import DIRECTORY_NAME, DIRECTORY_NAME_RULE
from edgebench.results.header import RunHeader
from edgebench.results.store import read_header

DIRECTORY = "baselines"


def _checked_name(name: str) -> str:
    if not re.fullmatch(DIRECTORY_NAME, name):  # a directory name, like a device's
        raise EdgebenchError(f"baseline name: it becomes a directory name: {DIRECTORY_NAME_RULE}; got {name!r}")
    return name


def baseline_path(results_root: Path, name: str) -> Path:
    return Path(results_root) / DIRECTORY / _checked_name(name)


def save_baseline(run_dir: Path, name: str, results_root: Path, replace: bool = False) -> Path:
    status = read_header(Path(run_dir)).status
    if status not in ("complete", "failed"):
        raise ResultsError(f"{run_dir} has status {status!r}: only a finished run can be a baseline")
    dest = baseline_path(results_root, name)
    if dest.exists() and not replace:
        raise ResultsError(f"baseline {name!r} exists ({dest}); pass --replace to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as partial:
        shutil.copytree(run_dir, partial)
    return dest


def list_baselines(results_root: Path) -> list[tuple[str, RunHeader]]:
    root = Path(results_root) / DIRECTORY
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else ():
        if path.is_dir() and not path.name.startswith("."):
            try:
                found.append((path.name, read_header(path)))
            except ResultsError:
                continue
    return found
