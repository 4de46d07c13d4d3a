"""The Database interface behaves the same on both backends (the `db` fixture runs each test twice)."""
from __future__ import annotations

import threading

import pytest

from collector.db import StoreError, connect
from collector.pg import translate


def test_translate_placeholders_outside_strings() -> None:
    assert translate("SELECT ? , 'a?b', \"c?\" WHERE x LIKE '%z' AND y = ?") == \
        "SELECT %s , 'a?b', \"c?\" WHERE x LIKE '%%z' AND y = %s"
    assert translate("SELECT 10 % 3, 'it''s ?'") == "SELECT 10 %% 3, 'it''s ?'"


def test_query_execute_executemany(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT, f DOUBLE PRECISION)")
    assert db.executemany("INSERT INTO t (k, v, f) VALUES (?, ?, ?)", [("a", 1, 0.5), ("b", 2, 1.5)]) == 2
    assert db.execute("INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING", ("a", 9)) == 0
    assert db.execute("UPDATE t SET v = v + ? WHERE k LIKE 'a%'", (10,)) == 1
    assert db.query("SELECT k, v, f FROM t ORDER BY k") == [{"k": "a", "v": 11, "f": 0.5},
                                                             {"k": "b", "v": 2, "f": 1.5}]
    assert db.query("SELECT k FROM t WHERE k = ?", ("zz",)) == []


def test_transaction_rolls_back_whole_and_nests(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.execute("INSERT INTO t (k) VALUES (?)", ("x",))
            with db.transaction():
                db.execute("INSERT INTO t (k) VALUES (?)", ("y",))
            raise RuntimeError("boom")
    assert db.query("SELECT k FROM t") == []
    with db.transaction():
        db.execute("INSERT INTO t (k) VALUES (?)", ("z",))
    assert db.query("SELECT k FROM t") == [{"k": "z"}]


def test_other_threads_see_only_committed_data(db) -> None:  # type: ignore[no-untyped-def]
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    seen: list[int] = []

    def count() -> None:
        seen.append(len(db.query("SELECT k FROM t")))

    with db.transaction():
        db.execute("INSERT INTO t (k) VALUES (?)", ("a",))
        th = threading.Thread(target=count)
        th.start()
        th.join()
    count()
    assert seen == [0, 1]


def test_migrations_create_the_same_tables(db) -> None:  # type: ignore[no-untyped-def]
    from collector import migrations

    assert migrations.migrate(db) == []
    versions = {r["version"] for r in db.query("SELECT version FROM schema_migrations")}
    assert versions == {m.version for m in migrations.discover()}
    db.execute("INSERT INTO quarantine (received, topic, code, reason, size, head) VALUES (?, ?, ?, ?, ?, ?)",
               (1.0, "t", "c", "r", 1, "h"))
    db.execute("INSERT INTO quarantine (received, topic, code, reason, size, head) VALUES (?, ?, ?, ?, ?, ?)",
               (2.0, "t", "c", "r", 1, "h"))
    assert [r["id"] for r in db.query("SELECT id FROM quarantine ORDER BY id")] == [1, 2]


def test_bad_postgres_url_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL at postgresql://bbt:\\*\\*\\*@127.0.0.1:1/"):
        connect("postgresql://bbt:secret@127.0.0.1:1/nope")
