"""The reads the dashboard makes of the collector's tables (collector.rates.queries, and the school model's in
collector.devices.registry, the audit log's in collector.audit), on small real stores: most on SQLite, the
joins and the RETURNING of store.open_fault on PostgreSQL too (the ``db`` fixture)."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from alerts import faultlog
from collector import audit
from collector.db import Database
from collector.devices import registry
from collector.devices.ingest import Incoming, prepare
from collector.intake.store import apply_batch, close_fault, open_fault, touch_device
from collector.rates import queries

NOW = time.time()
S = "s1"


SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # conftest's db on SQLite only


def place(db: Database, device: str, klass: str | None, room: str, building: str = "A", floor: str = "3") -> None:
    touch_device(db, S, device, NOW - 3600)
    db.execute("UPDATE devices SET class = ?, room = ?, building = ?, floor = ? WHERE school = ? AND device = ?",
               (klass, room, building, floor, S, device))


def events(db: Database, device: str, evs: list[dict[str, Any]]) -> None:
    apply_batch(db, [prepare(Incoming(f"bbt/v1/{S}/{device}/events", json.dumps(evs).encode(), NOW))])


def ev(seq: int, etype: str, data: dict[str, Any], ts: str) -> dict[str, Any]:
    return {"id": f"e-{seq}", "seq": seq, "type": etype, "ts": ts, "data": data}


@SQLITE
def test_device_events_sessions_and_last_heartbeat(db: Database) -> None:
    place(db, "pc-1", "301", "301")
    events(db, "pc-1", [
        ev(0, "session", {"state": "start", "session_id": "a", "start": "2026-11-23T08:00:00+08:00"},
           "2026-11-23T08:00:00+08:00"),
        ev(1, "usb", {"action": "inserted", "label": "U盘"}, "2026-11-23T08:10:00+08:00"),
        ev(2, "session", {"state": "end", "session_id": "a", "start": "2026-11-23T08:00:00+08:00",
                          "end": "2026-11-23T08:40:00+08:00", "active_s": 2400}, "2026-11-23T08:40:00+08:00"),
        ev(3, "usb", {"action": "removed", "label": "U盘"}, "2026-11-23T09:10:00+08:00"),
        ev(4, "heartbeat", {"in_use": False}, "2026-11-23T09:20:00+08:00")])
    start = db.query("SELECT t FROM events WHERE id = 'e-0'")[0]["t"]
    usb = queries.device_events(db, S, "pc-1", "usb", start)
    assert [(r["id"], r["data"]["action"]) for r in usb] == [("e-3", "removed"), ("e-1", "inserted")]
    assert [r["id"] for r in queries.device_events(db, S, "pc-1", "usb", start, limit=1)] == ["e-3"]
    assert queries.device_events(db, S, "pc-1", "usb", start + 86400) == []
    sessions = queries.session_events(db, S, "pc-1", start, start + 3600)
    assert [(t - start, d["state"]) for t, d in sessions] == [(0, "start"), (2400, "end")]
    assert queries.session_events(db, S, "pc-1", start + 1, start + 3600)[0][1]["state"] == "end"
    assert queries.last_heartbeat(db, S, "pc-1") == start + 80 * 60
    place(db, "pc-2", None, "302")
    assert queries.last_heartbeat(db, S, "pc-2") is None
    assert queries.last_heartbeat(db, S, "nope") is None


@SQLITE
def test_status_log_starts_with_the_state_before(db: Database) -> None:
    rows = [(1, "boot", 100.0), (0, "shutdown", 200.0), (1, "boot", 300.0), (0, "lwt", 400.0)]
    db.executemany("INSERT INTO status_log (school, device, online, reason, t, received) VALUES (?, ?, ?, ?, ?, ?)",
                     [(S, "pc-1", o, why, t, t + 1) for o, why, t in rows])
    db.execute("INSERT INTO status_log (school, device, online, reason, t, received) VALUES (?, ?, 1, 'x', 250, 251)",
                 (S, "pc-2"))
    got = queries.status_log(db, S, "pc-1", 250)
    assert [(r["online"], r["reason"], r["received"]) for r in got] == [(0, "shutdown", 201), (1, "boot", 301),
                                                                         (0, "lwt", 401)]
    assert [r["reason"] for r in queries.status_log(db, S, "pc-1", 0)] == ["boot", "shutdown", "boot", "lwt"]
    assert queries.status_log(db, S, "pc-3", 0) == []


@SQLITE
def test_device_faults_and_open_faults(db: Database) -> None:
    place(db, "pc-1", "301", "301")
    place(db, "pc-2", "302", "302")
    open_fault(db, S, "pc-1", "disk_full", "warning", "agent", "C: 99%", NOW - 300, "f1")
    open_fault(db, S, "pc-1", "overheat", "critical", "agent", None, NOW - 200, "f2")
    close_fault(db, S, "pc-1", "disk_full", NOW - 100)
    open_fault(db, S, "pc-2", "projector", "warning", "agent", None, NOW - 50, "f3")
    open_fault(db, S, "pc-9", "clock", "warning", "collector", None, NOW - 10)  # a device the registry lacks
    assert [(f["code"], f["cleared_t"] is None) for f in queries.device_faults(db, S, "pc-1")] == [
        ("overheat", True), ("disk_full", False)]
    assert [f["code"] for f in queries.device_faults(db, S, "pc-1", limit=1)] == ["overheat"]
    assert [(f["device"], f["code"], f["class"], f["room"]) for f in queries.open_faults(db, S)] == [
        ("pc-9", "clock", None, None), ("pc-2", "projector", "302", "302"), ("pc-1", "overheat", "301", "301")]
    assert queries.open_faults(db, "other") == []


@SQLITE
def test_school_model_reads(db: Database) -> None:
    registry.ensure_school(db, "s0", "实验小学")
    place(db, "pc-2", "302", "302", "B", "1")
    place(db, "pc-1", "301", "301", "A", "3")
    place(db, "pc-3", None, "304", "A", "3")
    assert registry.schools(db) == ["s0", S]
    assert registry.device_classes(db, S) == {"pc-1": "301", "pc-2": "302", "pc-3": None}
    assert registry.device_classes(db, "s0") == {}
    assert [(d["device"], d["room"]) for d in registry.device_places(db, S)] == [
        ("pc-1", "301"), ("pc-3", "304"), ("pc-2", "302")]


@SQLITE
def test_audit_entries_newest_first(db: Database) -> None:
    audit.audit(db, "backup", "/srv/a", {"size": 1}, who="root", now=100)
    audit.audit(db, "purge_teacher", "已离职教师-1", {}, who="admin", now=200)
    audit.audit(db, "restore", None, {"ok": True}, who="root", now=200)
    rows = audit.audit_entries(db)
    assert [(r["action"], r["actor"]) for r in rows] == [("restore", "root"), ("purge_teacher", "admin"),
                                                         ("backup", "root")]
    assert json.loads(rows[-1]["detail"]) == {"size": 1}
    assert [r["action"] for r in audit.audit_entries(db, 1)] == ["restore"]


def test_joins_and_open_fault_ids_on_both_backends(db: Database) -> None:
    place(db, "pc-1", "301", "301")
    place(db, "pc-2", "302", "302")
    agent = open_fault(db, S, "pc-1", "overheat", "critical", "agent", None, NOW - 300, "f1")
    assert agent is not None and open_fault(db, S, "pc-1", "overheat", "critical", "agent", None, NOW, "f2") is None
    over = open_fault(db, S, "pc-2", "power_cut", "critical", "person", "停电", NOW - 200, cleared_t=NOW - 100)
    again = open_fault(db, S, "pc-1", "overheat", "warning", "person", None, NOW - 50, even_if_open=True)
    assert over is not None and again is not None and len({agent, over, again}) == 3
    assert [f["id"] for f in queries.open_faults(db, S)] == [again, agent]
    tid = faultlog.register_fault(db, S, "pc-2", "report_display_missing", "warning", "李老师", opened_t=NOW - 20,
                                  now=NOW)
    fid = db.query("SELECT fault_id FROM fault_tickets WHERE id = ?", (tid,))[0]["fault_id"]
    rows = queries.faults_with_tickets(db, [fid, over, agent])
    assert [(r["id"], r["class"], r["ticket"]) for r in rows] == [(agent, "301", None), (over, "302", None),
                                                                   (fid, "302", tid)]
    assert rows[1]["cleared_t"] == NOW - 100
    assert queries.faults_with_tickets(db, []) == []
    assert registry.device_classes(db, S) == {"pc-1": "301", "pc-2": "302"}
