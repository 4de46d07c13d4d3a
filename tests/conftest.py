"""Shared fixtures: a real Mosquitto per test module, a fresh SQLite store per test."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import Mosquitto, mosquitto_binary


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


@pytest.fixture
def db(db_path: str):  # type: ignore[no-untyped-def]
    from collector import migrations
    from collector.db import connect

    d = connect(db_path)
    migrations.migrate(d)
    yield d
    d.close()
