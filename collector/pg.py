"""PostgreSQL behind the same Database interface as SQLite (psycopg 3).

SQL is written once with ``?`` placeholders (collector.db); here they become ``%s`` (and a
literal ``%`` becomes ``%%``); a ``?`` inside quotes stays. One connection per thread, autocommit
outside ``transaction()``; a transaction is ``BEGIN`` ... ``COMMIT`` on that thread's connection,
nested calls join the outer one. ``executemany`` runs in psycopg's pipeline mode (one round trip
for the whole batch), ``copy_rows`` streams rows with COPY.
"""
from __future__ import annotations

import contextlib
import re
import threading
from functools import lru_cache
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from collector.db import Row, StoreError, nested_transaction

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """``?`` -> ``%s`` outside quoted strings and identifiers; every ``%`` -> ``%%``."""
    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "?":
            return "%s"
        return tok.replace("%", "%%")  # psycopg reads % everywhere, even inside literals
    return _TOKEN.sub(repl, sql)


def safe_url(url: str) -> str:
    """The URL with its password masked (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@", 1)
    return url


class PostgresDB:
    """PostgreSQL through psycopg 3, one connection per thread."""

    dialect = "postgresql"

    def __init__(self, url: str, connect_timeout: int = 10) -> None:
        self.url = url
        self._timeout = connect_timeout
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._conn()  # fail early on a bad URL or an unreachable server

    def _conn(self) -> psycopg.Connection[Any]:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=self._timeout, application_name="bbt")
            except psycopg.Error as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise StoreError(f"cannot connect to PostgreSQL at {safe_url(self.url)}: {msg}") from None
            self._local.conn = conn
            self._local.depth = 0
            with self._lock:
                self._all.append(conn)
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._conn().cursor() as cur:
            cur.execute(translate(sql), tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self._conn().cursor() as cur:
            cur.execute(translate(sql), tuple(params))
            return cur.rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        rows = [tuple(r) for r in rows]
        if not rows:
            return 0
        with self._conn().cursor() as cur:
            cur.executemany(translate(sql), rows)
            return cur.rowcount

    def copy_rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Stream rows into a table with COPY (fast bulk load, e.g. into a staging table)."""
        with self._conn().cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        conn = self._conn()  # this thread's connection (and its depth counter) exists before we nest
        return nested_transaction(self._local, conn.transaction)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
        self._local = threading.local()
