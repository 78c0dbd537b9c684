"""Which database a command uses: `--db URL`, else $EDGEBENCH_DB, else SQLite under the results root.

URLs: `sqlite:///abs/path.sqlite`, `sqlite:relative.sqlite`, a bare path, or `postgresql://user@host:port/db`
(also `postgres://`), passed to psycopg as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import EdgebenchError

ENV = "EDGEBENCH_DB"
DEFAULT_FILE = "edgebench.sqlite"


@dataclass(frozen=True)
class DbUrl:
    kind: str  # "sqlite" | "postgresql"
    target: str  # the file, or the URL psycopg connects to

    def __str__(self) -> str:
        return self.target if self.kind == "postgresql" else f"sqlite:///{Path(self.target).resolve()}"


def parse_db_url(text: str) -> DbUrl:
    text = text.strip()
    if not text:
        raise EdgebenchError(f"an empty database URL (--db or ${ENV}): give sqlite:///FILE or postgresql://...")
    if text.startswith(("postgresql://", "postgres://")):
        return DbUrl("postgresql", text)
    if text.startswith("sqlite:"):
        path = text[len("sqlite:"):]
        path = path[2:] if path.startswith("//") else path  # sqlite:///abs -> /abs, sqlite:rel -> rel
        if not path:
            raise EdgebenchError(f"database URL {text!r} names no file: write sqlite:///path/to/file.sqlite")
        return DbUrl("sqlite", path)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise EdgebenchError(f"database URL {text!r}: {scheme!r} is not supported; use sqlite:///FILE or "
                             f"postgresql://user@host:port/dbname")
    return DbUrl("sqlite", text)


def configured_db(option: str | None, results_root: Path | None = None, default: bool = True) -> DbUrl | None:
    """The database of a command: its --db, else $EDGEBENCH_DB, else (when `default`) the SQLite file
    under the results root."""
    text = option if option is not None else os.environ.get(ENV)
    if text is not None:
        return parse_db_url(text)
    if default:
        return DbUrl("sqlite", str(Path(results_root or "results") / DEFAULT_FILE))
    return None
