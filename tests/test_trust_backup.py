"""Backups (online, encrypted, pruned), restore round trip, heartbeat retention and teacher purges."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from collector.db import Database, connect
from collector.operations import backup as bk
from collector.operations import retention, trust_jobs
from tests.helpers import run_bbt, wait_for

DAY = 86400.0


def add_event(db: Database, device: str, eid: str, etype: str, t: float, data: dict[str, Any] | None = None) -> None:
    db.execute("INSERT INTO devices (school, device) VALUES ('s1', ?) ON CONFLICT (school, device) DO NOTHING",
               (device,))
    db.execute("INSERT INTO events (school, device, id, seq, type, ts, t, received, data) "
               "VALUES ('s1', ?, ?, 0, ?, '2026-11-23T08:00:00+08:00', ?, ?, ?)",
               (device, eid, etype, t, t, json.dumps(data or {})))


def fill(db: Database, n: int = 50) -> None:
    with db.transaction():
        for i in range(n):
            add_event(db, f"pc-{i % 5}", f"e{i}", "heartbeat" if i % 2 else "session", 1_700_000_000.0 + i,
                      {"i": i, "text": "班班通"})


def snapshot(db: Database) -> list[dict[str, Any]]:
    return db.query("SELECT school, device, id, type, t, data FROM events ORDER BY device, id")


def test_backup_restore_round_trip(db: Database, tmp_path: Path) -> None:
    fill(db)
    before = snapshot(db)
    path = bk.backup(db, tmp_path / "backups", keep=3)
    assert path.name.startswith("bbt-") and path.stat().st_mode & 0o077 == 0
    with db.transaction():
        db.execute("DELETE FROM events WHERE device = 'pc-1'")
        add_event(db, "pc-9", "later", "heartbeat", 1.0)
    assert snapshot(db) != before
    db.close()
    restored = bk.restore(path, db.url)
    try:
        assert snapshot(restored) == before
        assert restored.query("SELECT COUNT(*) AS n FROM events WHERE device = 'pc-9'")[0]["n"] == 0
    finally:
        restored.close()


def test_encrypted_backup_needs_the_key_and_detects_tampering(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "bbt.db"))
    from collector import migrations
    migrations.migrate(db)
    fill(db, 20)
    before = snapshot(db)
    assert bk.make_key(tmp_path / "backup.key") and not bk.make_key(tmp_path / "backup.key")
    key = bk.load_key(str(tmp_path / "backup.key"))
    path = bk.backup(db, tmp_path / "b", keep=2, key=key)
    db.close()
    raw = path.read_bytes()
    assert path.name.endswith(".db.enc") and b"SQLite format" not in raw and "班班通".encode() not in raw
    target = str(tmp_path / "restored.db")
    with pytest.raises(bk.BackupError, match="encrypted"):
        bk.restore(path, target)
    bk.make_key(tmp_path / "other.key")
    with pytest.raises(bk.BackupError, match="wrong key"):
        bk.restore(path, target, bk.load_key(str(tmp_path / "other.key")))
    bad = tmp_path / "bbt-tampered.db.enc"
    bad.write_bytes(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])
    with pytest.raises(bk.BackupError, match="altered"):
        bk.restore(bad, target, key)
    bad.write_bytes(raw[:-20])
    with pytest.raises(bk.BackupError):
        bk.restore(bad, target, key)
    restored = bk.restore(path, target, key)
    assert snapshot(restored) == before
    restored.close()


def test_keep_only_the_newest_n(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "bbt.db"))
    from collector import migrations
    migrations.migrate(db)
    made = [bk.backup(db, tmp_path / "b", keep=2, now=1_800_000_000 + i * DAY) for i in range(4)]
    db.close()
    assert bk.list_backups(tmp_path / "b") == made[-2:]
    assert not list((tmp_path / "b").glob(".bbt-backup-*")), "no temporary files left behind"


def test_backup_is_online_while_the_collector_writes(tmp_path: Path) -> None:
    from collector import migrations
    db = connect(str(tmp_path / "bbt.db"))
    migrations.migrate(db)
    pad = "x" * 700
    with db.transaction():  # ~20 MB: more pages than a stepped backup copies at once
        db.executemany("INSERT INTO events (school, device, id, seq, type, ts, t, received, data) "
                       "VALUES ('s1', 'pc-0', ?, 0, 'heartbeat', 'x', 0, 0, ?)",
                       [(f"p{i}", pad) for i in range(25000)])
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        w = connect(db.url)
        i = 0
        deadline = time.monotonic() + 20  # a backup that restarts on every write would never end
        while not stop.is_set() and time.monotonic() < deadline:
            with w.transaction():
                add_event(w, "pc-w", f"w{i}", "heartbeat", float(i))
            written.append(i)
            i += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        wait_for(lambda: len(written) >= 3, 20, what="the writer to run")
        t0 = time.monotonic()
        path = bk.backup(db, tmp_path / "b")
        took = time.monotonic() - t0
        copy = connect(str(path))
        n = copy.query("SELECT COUNT(*) AS n FROM events WHERE device = 'pc-w'")[0]["n"]
        copy.close()
        wait_for(lambda: len(written) > n + 2, 20, what="writes after the backup")
    finally:
        stop.set()
        t.join()
    db.close()
    assert 0 < n < len(written), "a consistent copy taken while writes went on, which kept going"
    assert took < 15


def test_cli_backup_restore_and_audit(tmp_path: Path) -> None:
    db_file = str(tmp_path / "bbt.db")
    db = connect(db_file)
    from collector import migrations
    migrations.migrate(db)
    fill(db, 10)
    db.close()
    r = run_bbt("backup", "--db", db_file, "--out", str(tmp_path / "b"), "--keep", "3")
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip().splitlines()[-1]
    r = run_bbt("restore", path, "--db", db_file)
    assert r.returncode == 1 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_bbt("restore", path, "--db", str(tmp_path / "new.db"))
    assert r.returncode == 0 and "10 events" in r.stdout, r.stderr
    r = run_bbt("audit", "--db", str(tmp_path / "new.db"))
    assert r.returncode == 0 and " restore " in r.stdout, r.stdout
    r = run_bbt("audit", "--db", db_file)
    assert r.returncode == 0 and " backup " in r.stdout, r.stdout


def test_heartbeat_retention_keeps_everything_else(db: Database) -> None:
    now = 1_800_000_000.0
    with db.transaction():
        add_event(db, "pc-1", "old-hb", "heartbeat", now - 40 * DAY)
        add_event(db, "pc-1", "new-hb", "heartbeat", now - 10 * DAY)
        add_event(db, "pc-1", "old-session", "session", now - 40 * DAY)
        add_event(db, "pc-2", "old-hb2", "heartbeat", now - 31 * DAY)
    assert retention.purge_heartbeats(db, 30, now=now, who="test") == 2
    assert [r["id"] for r in db.query("SELECT id FROM events ORDER BY id")] == ["new-hb", "old-session"]
    [a] = db.query("SELECT actor, action, detail FROM audit")
    assert a["action"] == "retention_heartbeats" and json.loads(a["detail"])["deleted"] == 2


def all_text(db: Database) -> str:
    out: list[str] = []
    for table in retention.table_columns(db):
        for row in db.query(f'SELECT * FROM "{table}"'):
            out.extend(str(v) for v in row.values())
    return "\n".join(out)


def test_purge_teacher_destroys_the_name_everywhere_and_is_logged(db: Database) -> None:
    from dashboard.users import add_user, create_token

    add_user(db, "王芳", "teacher", "pw-123456-x", "s1", None)
    add_user(db, "李明", "teacher", "pw-123456-y", "s1", None)
    create_token(db, "王芳")
    with db.transaction():
        db.execute("CREATE TABLE purge_probe (school TEXT, klass TEXT, teacher TEXT, acked_by TEXT)")
        db.executemany("INSERT INTO purge_probe VALUES ('s1', ?, ?, ?)",
                       [("一(1)班", "王芳", None), ("一(2)班", "王芳", "王芳"), ("一(3)班", "李明", None)])
    res = retention.purge_teacher(db, "王芳", "s1", who="admin")
    assert "王芳" not in all_text(db)
    assert "李明" in all_text(db), "other teachers are untouched"
    rows = db.query("SELECT klass, teacher FROM purge_probe ORDER BY klass")
    assert [r["teacher"] for r in rows] == [res["pseudonym"], res["pseudonym"], "李明"], "lessons keep their counts"
    assert res["rows"]["users.deleted"] == 1 and res["rows"]["tokens.deleted"] == 1
    [a] = db.query("SELECT actor, action, target FROM audit WHERE action = 'purge_teacher'")
    assert a["actor"] == "admin" and a["target"] == res["pseudonym"]
    with pytest.raises(retention.PurgeError, match="no personal data"):
        retention.purge_teacher(db, "王芳", "s1")


def test_daily_job_writes_a_backup_and_is_scheduled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db_file = str(tmp_path / "data" / "bbt.db")
    db = connect(db_file)
    from collector import migrations
    migrations.migrate(db)
    fill(db, 4)
    monkeypatch.delenv("BBT_BACKUP_DIR", raising=False)
    monkeypatch.setenv("BBT_BACKUP_KEEP", "2")
    for day in range(3):
        trust_jobs.run_daily(db_file, now=1_800_000_000 + day * DAY)
    files = bk.list_backups(tmp_path / "data" / "backups")
    assert len(files) == 2
    assert len(db.query("SELECT id FROM audit WHERE action = 'backup' AND actor = 'scheduler'")) == 3
    db.close()
    server = SimpleNamespace(opts=SimpleNamespace(db_url=db_file))
    monkeypatch.setenv("BBT_BACKUP_AT", "03:15")
    stop = trust_jobs.start(server)
    assert stop is not None
    job = server.trust_scheduler.get_job("bbt-backup")
    assert job.next_run_time.hour == 3 and job.next_run_time.minute == 15
    stop()


def test_daily_job_runs_on_one_server_only(tmp_path: Path) -> None:
    from collector import lease, migrations

    db_file = str(tmp_path / "data" / "bbt.db")
    db = connect(db_file)
    migrations.migrate(db)
    assert lease.acquire(db, "backup", "other-server:1", ttl=3600)
    trust_jobs.run_daily(db_file)
    assert bk.list_backups(tmp_path / "data" / "backups") == []
    assert lease.release(db, "backup", "other-server:1")
    trust_jobs.run_daily(db_file)
    assert len(bk.list_backups(tmp_path / "data" / "backups")) == 1
    db.close()
