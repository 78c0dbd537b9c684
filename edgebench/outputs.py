"""Writing files whole, and writing where the user said (-o, --markdown, --junit, --json, a results
root, `init DIR`).

`replacing` is the one temporary-name-and-rename of the controller (the runner, stdlib-only and
shipped alone, has its own): a reader sees the old file or the whole new one, never half of one,
and a failed write leaves no partial file behind.

Every command that writes to a path from its command line goes through the rest, so a missing
folder, a folder in the way or a refused write is one sentence naming the path, never a
traceback, and the check comes before the work that would produce the output.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgebench.errors import EdgebenchError


@contextmanager
def replacing(path: os.PathLike | str, *, exclusive: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`, unique to this process and thread, for the block to
    write a file or a folder at; when the block succeeds it takes `path`'s place whole (an old
    folder there is moved aside first, then removed). `exclusive`: never replace a file that exists,
    and raise FileExistsError instead (the final name is a hard link, which fails if it is taken)."""
    path = Path(path)
    # the suffix kept last: a writer may choose a format by it
    partial = path.with_name(f".{path.stem}.partial-{os.getpid()}-{threading.get_ident()}{path.suffix}")
    _remove(partial)
    try:
        yield partial
        if exclusive:
            os.link(partial, path)
        elif partial.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}-{threading.get_ident()}")
            os.replace(path, old)
            os.replace(partial, path)
            _remove(old)
        else:
            os.replace(partial, path)
    finally:
        _remove(partial)


def write_whole(path: os.PathLike | str, data: str | bytes, *, sync: bool = False, exclusive: bool = False) -> Path:
    """Write `data` to `path` through `replacing`; `sync`: on the disk before it takes the name
    (a record a crash must not leave empty)."""
    with replacing(path, exclusive=exclusive) as partial:
        with open(partial, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
    return Path(path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class OutputError(EdgebenchError):
    """An output path given on the command line cannot be written."""

    kind = "output"


def check_output_file(path: os.PathLike | str, what: str) -> Path:
    """Refuse a file path whose folder is missing, or that names a folder, before anything runs.
    A missing folder is not created: it is more often a typo than a wish."""
    if str(path) in ("", "."):
        raise OutputError(f"cannot write the {what}: the path is empty ({_empty_hint(what)})")
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise OutputError(f"cannot write the {what} to {path}: that is a folder; give a file name")
    if not folder.exists():
        raise OutputError(f"cannot write the {what} to {path}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write the {what} to {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the {what} to {path}: no permission to write in {folder}")
    return path


def _empty_hint(what: str) -> str:
    """An empty path is mostly an unset variable: `--markdown "$GITHUB_STEP_SUMMARY"` outside GitHub Actions
    reaches here as "" (which Path reads as ".", this folder)."""
    if what == "markdown report":
        return "is $GITHUB_STEP_SUMMARY set? GitHub Actions sets it; elsewhere it is empty: give a file name"
    return "an unset shell variable? give a file name"


@contextmanager
def output_errors(path: os.PathLike | str, what: str):
    """Turn a failed write (disk full, permission, a file in the way) into one sentence."""
    try:
        yield
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"cannot write the {what} to {path}: {reason}") from exc


@contextmanager
def output_file(path: os.PathLike | str, what: str):
    """Yield a temporary path beside `path`; when the block succeeds it replaces `path` whole, so
    a re-run replaces an old file (never appends to it) and a failed write leaves the old one."""
    path = check_output_file(path, what)
    with output_errors(path, what), replacing(path) as partial:
        yield partial


def write_output(path: os.PathLike | str, text: str, what: str, *, append: bool = False) -> Path:
    """Write `text` to `path` whole, or append it (for files others also write, like a CI summary)."""
    if append:
        path = check_output_file(path, what)
        with output_errors(path, what), open(path, "a") as f:
            f.write(text)
        return path
    with output_file(path, what) as partial:
        partial.write_text(text)
    return Path(path)


def output_folder(path: os.PathLike | str, what: str) -> Path:
    """Create a folder the output goes under (a results root, `init DIR`), with its parents."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"cannot use {path} as the {what}: it is a file, not a folder")
    with output_errors(path, what):
        path.mkdir(parents=True, exist_ok=True)
    return path
