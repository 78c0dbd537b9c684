"""Build the runner zipapp: the one file that is shipped to every device.

The archive is byte-for-byte reproducible (sorted entries, fixed timestamps),
so its sha256 names it in the device's content-addressed store and an
unchanged runner is never pushed twice.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from pathlib import Path

from edgebench.outputs import write_whole

RUNNER_SOURCE = Path(__file__).parent.parent / "runner"
PACKAGE = "ebrunner"
_EPOCH = (1980, 1, 1, 0, 0, 0)
_MAIN = f"import sys\nfrom {PACKAGE}.entry import main\nsys.exit(main())\n"


def _entry(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


@lru_cache(maxsize=1)
def runner_bytes() -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w") as archive:
        _entry(archive, "__main__.py", _MAIN.encode())
        for source in sorted(RUNNER_SOURCE.rglob("*.py")):
            relative = source.relative_to(RUNNER_SOURCE).as_posix()
            _entry(archive, f"{PACKAGE}/{relative}", source.read_bytes())
    return buffer.getvalue()


def runner_sha256() -> str:
    return hashlib.sha256(runner_bytes()).hexdigest()


def write_runner(directory: Path) -> Path:
    """Write the zipapp as `<directory>/<sha256>/runner.pyz` unless it is already there."""
    target = Path(directory) / runner_sha256() / "runner.pyz"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_whole(target, runner_bytes())
    return target
