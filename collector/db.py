"""Database access behind one small interface, so SQLite and PostgreSQL are interchangeable.

SQL in bbt is written once with ``?`` placeholders and portable types (TEXT, BIGINT,
DOUBLE PRECISION, ``{id}`` for an auto-increment key); each backend translates.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import sqlite_utils

from common.errors import BbtError

Row = dict[str, Any]


class Database(Protocol):
    dialect: str
    url: str

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int: ...
    def transaction(self) -> contextlib.AbstractContextManager[None]: ...
    def close(self) -> None: ...


class StoreError(BbtError):
    """A problem with the store that a user can act on (bad URL, unwritable path, ...)."""


@contextlib.contextmanager
def nested_transaction(local: threading.local,
                       outer: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[None]:
    """Join this thread's open transaction (``local.depth`` > 0) or open one with ``outer``."""
    if local.depth:
        local.depth += 1
        try:
            yield
        finally:
            local.depth -= 1
        return
    local.depth = 1
    try:
        with outer():
            yield
    finally:
        local.depth = 0


class SQLiteDB:
    """SQLite through sqlite-utils, in WAL mode, one connection per thread."""

    dialect = "sqlite"

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.url = path
        self.path = path
        self._sync = synchronous
        self._local = threading.local()
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the data directory {parent}: {e.strerror}") from None
        self._conn()  # fail early on a bad path

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.Error as e:
                raise StoreError(f"cannot open SQLite database {self.path}: {e}") from None
            conn.execute(f"PRAGMA synchronous={self._sync}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._local.depth = 0
        return conn

    @property
    def utils(self) -> sqlite_utils.Database:
        """The sqlite-utils view of this thread's connection (bulk inserts, introspection)."""
        return sqlite_utils.Database(self._conn())

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn().execute(sql, tuple(params))
        cols = [d[0] for d in cur.description or ()]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn().execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._conn().executemany(sql, rows).rowcount

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        self._conn()  # this thread's connection (and its depth counter) exists before we nest
        return nested_transaction(self._local, self._begin_commit)

    @contextlib.contextmanager
    def _begin_commit(self) -> Iterator[None]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def default_db_url() -> str:
    """BBT_DB, else the SQLite file in the data directory (BBT_DATA_DIR or ~/.local/share/bbt)."""
    url = os.environ.get("BBT_DB")
    if url:
        return url
    base = os.environ.get("BBT_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "bbt")
    return os.path.join(base, "bbt.db")


def connect(url: str | None = None) -> Database:
    """Open a database by URL: a file path or sqlite:///path, or postgresql://..."""
    url = url or default_db_url()
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from collector.pg import PostgresDB
        except ImportError as e:
            raise StoreError(f"PostgreSQL support is not available: {e}") from None
        return PostgresDB(url)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///"):]
    elif "://" in url:
        raise StoreError(f"unsupported database URL {url!r}: use a file path or postgresql://")
    return SQLiteDB(url)


def first(db: Database, sql: str, params: Sequence[Any] = ()) -> Row | None:
    """The query's first row, or None when it finds none."""
    rows = db.query(sql, params)
    return rows[0] if rows else None
