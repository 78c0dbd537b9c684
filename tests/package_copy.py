"""A copy of the edgebench package with a plug-in added, for tests that show a plug-in is its module
(and, for a transport, a registry line) and nothing else."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def code(root: Path) -> dict[str, bytes]:
    """The package's Python files by path."""
    return {str(p.relative_to(root.parent)): p.read_bytes() for p in sorted(root.rglob("*.py"))
            if "__pycache__" not in p.parts}


def copy_with(root: Path, added: dict[Path, str], edited: dict[Path, tuple[str, str]] | None = None) -> Path:
    """edgebench copied under `root`, with `added` files (path -> text) and `edited` ones (path -> (old,
    new) text replaced once); asserts the copy differs from this tree by exactly those files."""
    shutil.copytree(REPO / "edgebench", root / "edgebench", ignore=shutil.ignore_patterns("__pycache__"))
    for path, text in added.items():
        (root / path).write_text(text)
    for path, (old, new) in (edited or {}).items():
        text = (root / path).read_text()
        assert text.count(old) == 1, (path, old)
        (root / path).write_text(text.replace(old, new))
    after, before = code(root / "edgebench"), code(REPO / "edgebench")
    for path in added:
        assert after.pop(str(path))
    for path in edited or {}:
        assert after.pop(str(path)) != before.pop(str(path))
    assert after == before
    return root


def edgebench(package_root: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    return subprocess.run([sys.executable, "-m", "edgebench", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
