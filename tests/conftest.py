"""Shared fixtures: a real Mosquitto per test, a fresh store per test on SQLite AND PostgreSQL.

``db`` (and ``db_url``) are parametrized over both backends, so every storage test runs on
both: pass ``db.url`` (or ``db_url``) wherever a store URL is needed (Collector, create_app,
``--db``). ``db_path`` stays a SQLite file for tests that are about SQLite files.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import EmbeddedRig, Mosquitto, mosquitto_binary

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session", autouse=True)
def _broker_required() -> None:
    if mosquitto_binary() is None and os.environ.get("CI"):
        pytest.exit("mosquitto is missing and CI=true: the broker tests must not be skipped", returncode=3)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    m = Mosquitto(tmp_path / "mosquitto").start()
    yield m
    m.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "bbt.db")


@pytest.fixture(scope="session")
def pg_databases():  # type: ignore[no-untyped-def]
    """The per-session PostgreSQL template (None when PostgreSQL is unavailable and CI is not set)."""
    from tests import pg

    reason = pg.available()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.exit(f"PostgreSQL is not reachable at {pg.ADMIN_URL} and CI=true: {reason}", returncode=3)
        yield None
        return
    dbs = pg.PgDatabases()
    yield dbs
    dbs.close()


@pytest.fixture
def pg_url(pg_databases) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, migrated PostgreSQL database for this test; dropped afterwards."""
    if pg_databases is None:
        pytest.skip("PostgreSQL not reachable (scripts/postgres.sh starts it)")
    url = pg_databases.create()
    yield url
    pg_databases.drop(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "bbt.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(db_url: str):  # type: ignore[no-untyped-def]
    from collector import migrations
    from collector.db import connect

    d = connect(db_url)
    migrations.migrate(d)
    yield d
    d.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[EmbeddedRig]:
    """bbt's embedded broker with accounts (tests.brokers.EmbeddedRig)."""
    r = EmbeddedRig(tmp_path)
    yield r
    r.close()
