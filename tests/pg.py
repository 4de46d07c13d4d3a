"""PostgreSQL for tests: a fresh database per test, cloned from a migrated template.

The server comes from BBT_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres,
which scripts/postgres.sh installs and starts). Once per session a template database is
created and migrated; every test then gets a ``CREATE DATABASE ... TEMPLATE`` copy of it, and it
is dropped afterwards on a background thread with its own connection: DROP DATABASE waits for a
checkpoint (about a second), which the next test need not wait for. Names carry the pid, so parallel runs on one server
never collide, and databases left by killed runs are dropped at the next start.
"""
from __future__ import annotations

import itertools
import os
import queue
import re
import threading
from urllib.parse import urlsplit, urlunsplit

import psycopg

ADMIN_URL = os.environ.get("BBT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "bbt_test_"


def url_for(dbname: str) -> str:
    parts = urlsplit(ADMIN_URL)
    return urlunsplit(parts._replace(path="/" + dbname))


def available() -> str | None:
    """None when the server answers, else the reason it does not."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgDatabases:
    """Creates the template once and hands out fresh per-test databases."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.template = f"{PREFIX}{self.pid}_tpl"
        self._n = itertools.count(1)
        self._admin = psycopg.connect(ADMIN_URL, autocommit=True)
        self._drop_stale()
        self._admin.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
        self._admin.execute(f'CREATE DATABASE "{self.template}"')
        from collector import migrations
        from collector.pg import PostgresDB

        tpl = PostgresDB(url_for(self.template))
        try:
            migrations.migrate(tpl)
        finally:
            tpl.close()

    def _drop_stale(self) -> None:
        rows = self._admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                   (PREFIX + "%",)).fetchall()
        for (name,) in rows:
            m = re.match(rf"{PREFIX}(\d+)_", name)
            if m and not _alive(int(m.group(1))):
                self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self) -> str:
        name = f"{PREFIX}{self.pid}_{next(self._n)}"
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return url_for(name)

    def drop(self, url: str) -> None:
        """Drop a test's database in the background."""
        if getattr(self, "_worker", None) is None:
            self._drops: queue.Queue[str] = queue.Queue()
            self._errors: list[BaseException] = []
            self._worker = threading.Thread(target=self._drop_all, name="pg-test-drops", daemon=True)
            self._worker.start()
        self._drops.put(urlsplit(url).path.lstrip("/"))

    def _drop_all(self) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            while True:
                name = self._drops.get()
                if not name:
                    return
                try:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                except psycopg.Error as e:
                    self._errors.append(e)

    def close(self) -> None:
        if getattr(self, "_worker", None) is not None:
            self._drops.put("")
            self._worker.join(300)
        self._admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
        self._admin.close()
        if getattr(self, "_errors", None):
            raise RuntimeError(f"could not drop test databases: {self._errors[0]}")
