"""One connection API over SQLite (stdlib) and PostgreSQL (psycopg 3): SQL is written with `?`
placeholders and portable types; PostgreSQL gets `%s` placeholders and its own names for the types."""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from edgebench.db.url import DbUrl
from edgebench.errors import EdgebenchError

_PG_TYPES = {"REAL": "DOUBLE PRECISION", "INTEGER": "BIGINT"}


class Database:
    def __init__(self, url: DbUrl, raw):
        self.url, self.raw = url, raw
        self.postgres = url.kind == "postgresql"

    def sql(self, text: str) -> str:
        if not self.postgres:
            return text
        for portable, native in _PG_TYPES.items():
            text = text.replace(f" {portable}", f" {native}")
        return text.replace("?", "%s")

    def execute(self, text: str, params=()):
        cursor = self.raw.cursor()
        cursor.execute(self.sql(text), tuple(params))
        return cursor

    def executemany(self, text: str, rows) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            self.raw.cursor().executemany(self.sql(text), rows)

    def query(self, text: str, params=()) -> list[tuple]:
        return list(self.execute(text, params).fetchall())

    @contextmanager
    def transaction(self):
        try:
            yield self
            self.raw.commit()
        except BaseException:
            self.raw.rollback()
            raise

    def close(self) -> None:
        self.raw.close()


def connect(url: DbUrl, create: bool = True) -> Database:
    """Open the database and make sure its tables exist. A command that only reads passes create=False: a
    SQLite file that is not there is then a mistyped path, not a new empty database to report nothing from."""
    from edgebench.db.schema import create_tables

    if url.kind == "postgresql":
        try:
            import psycopg
        except ImportError as exc:  # psycopg is a dependency; a broken install says so
            raise EdgebenchError(f"PostgreSQL needs psycopg (pip install 'psycopg[binary]'): {exc}") from exc
        try:
            raw = psycopg.connect(url.target, connect_timeout=10)
        except psycopg.Error as exc:
            one_line = " ".join(str(exc).split())  # libpq's message spans lines with a hint
            raise EdgebenchError(f"cannot connect to the database {url.target}: {one_line}") from exc
    else:
        path = Path(url.target)
        if not create and not path.is_file():
            raise EdgebenchError(f"no database {path}: the file does not exist (a mistyped path? "
                                 f"`edgebench db load RUN_DIR...` creates it)")
        if not path.parent.is_dir():
            raise EdgebenchError(f"database {path}: the folder {path.parent} does not exist")
        try:
            # a run feeds it from its device threads, one at a time (db/feed.py holds a lock)
            raw = sqlite3.connect(path, timeout=30, check_same_thread=False)
        except sqlite3.Error as exc:
            raise EdgebenchError(f"cannot open the database {path}: {exc}") from exc
    db = Database(url, raw)
    try:
        with db.transaction():
            create_tables(db)
    except Exception as exc:
        db.close()
        raise EdgebenchError(f"database {url}: cannot create edgebench's tables: {exc}") from exc
    return db


@contextmanager
def opened(url: DbUrl, create: bool = True):
    db = connect(url, create)
    try:
        yield db
    finally:
        db.close()
