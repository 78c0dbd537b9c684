"""Which llama.cpp source a device build compiles, told apart by content: for a git checkout its commit
plus a hash of what is changed or untracked; otherwise a hash of every file that can go into a build.
Two builds from sources with the same identity (and flags, target and compiler) are the same build."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError

# folders of a llama.cpp tree that no build of the engine reads: vocabularies, docs, the Python package,
# and build folders a user may keep in a checkout
_NOT_BUILT = {"models", "docs", "media", "gguf-py", "scripts", "ci", "pocs"}


@dataclass(frozen=True)
class SourceIdentity:
    path: Path
    description: str  # for the manifest and messages
    identity: str  # what the cache key hashes
    commit: str | None  # the checkout's commit; None where it is no git checkout
    changed: bool | None  # uncommitted or untracked changes; None where it is no git checkout


def identify(path: Path, *, description: str | None = None, use_git: bool = True) -> SourceIdentity:
    path = Path(path).expanduser().resolve()
    if not (path / "CMakeLists.txt").is_file():
        raise EdgebenchError(f"{path} is not a llama.cpp source folder: it has no CMakeLists.txt")
    commit = _git(path, "rev-parse", "HEAD") if use_git else None
    if commit:
        changes = _changes_hash(path)
        state = " with uncommitted changes" if changes else ""
        return SourceIdentity(path, description or f"llama.cpp checkout {path} at {commit[:12]}{state}",
                              f"git {commit} {changes or 'clean'}", commit.strip(), bool(changes))
    return SourceIdentity(path, description or f"llama.cpp source {path}", f"content {content_hash(path)}",
                          None, None)


def git_build_info(path: Path) -> tuple[str | None, int | None]:
    """The commit and commit count llama.cpp's CMake asks git for (cmake/build-info.cmake), where the source
    is in a git checkout (the vendored copy is a submodule of the sdist); None where git says nothing."""
    commit = _git(path, "rev-parse", "--short", "HEAD")
    count = _git(path, "rev-list", "--count", "HEAD")
    return commit or None, int(count) if count and count.isdigit() else None


def content_hash(root: Path) -> str:
    """sha256 over the relative path and bytes of every file a build could read, in path order."""
    digest = hashlib.sha256()
    for file in sorted(build_inputs(root)):
        digest.update(f"{file.relative_to(root).as_posix()}\0".encode())
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def build_inputs(root: Path):
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.name.startswith("build") or entry.name in _NOT_BUILT:
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from (f for f in entry.rglob("*") if f.is_file() and "/." not in f.relative_to(root).as_posix())
        elif entry.is_file():
            yield entry


def _changes_hash(path: Path) -> str | None:
    """A hash of the diff against HEAD and of untracked files below `path`; None when there are none."""
    status = _git(path, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if not status:
        return None
    digest = hashlib.sha256(status.encode())
    digest.update(_git_bytes(path, "diff", "HEAD", "--binary", "--", "."))
    untracked = _git_bytes(path, "ls-files", "--others", "--exclude-standard", "-z", "--", ".")
    for name in sorted(filter(None, untracked.split(b"\0"))):
        file = path / name.decode()
        digest.update(name + b"\0" + (hashlib.sha256(file.read_bytes()).digest() if file.is_file() else b""))
    return digest.hexdigest()[:16]


def _git(path: Path, *args: str) -> str | None:
    out = _git_bytes(path, *args, quiet=True)
    return out.decode().strip() if out is not None else None


def _git_bytes(path: Path, *args: str, quiet: bool = False) -> bytes | None:
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True)
    except OSError:
        return None  # no git here: the source is hashed by content instead
    if done.returncode != 0:
        if quiet:
            return None
        raise EdgebenchError(f"git {args[0]} failed in {path}: {done.stderr.decode().strip()[:200]}")
    return done.stdout
