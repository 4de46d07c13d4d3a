"""Reads of the collector's tables (events, status_log, faults, lesson_usage, usage_days) for the pages.

The dashboard holds no SQL on tables the collector owns (tests/test_dashboard_sql.py checks it): what
it shows of a device's history, the open faults, the day's lessons, comes from these functions. Each
is written once in portable SQL (collector.db) and runs on SQLite and PostgreSQL. The school model's
reads (schools, device classes and places) are collector.devices.registry's; the audit log's collector.audit's.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

from collector.db import Database, Row


def device_events(db: Database, school: str, device: str, etype: str, since: float,
                  limit: int = 200) -> list[Row]:
    """A device's events of one type since ``since``, newest first, with ``data`` decoded."""
    rows = db.query("SELECT id, seq, ts, t, data, clock_fault FROM events WHERE school = ? AND device = ? "
                    "AND type = ? AND t >= ? ORDER BY t DESC LIMIT ?", (school, device, etype, since, limit))
    for r in rows:
        r["data"] = json.loads(r["data"])
    return rows


def session_events(db: Database, school: str, device: str, since: float, until: float) -> list[tuple[float, Any]]:
    """(t, data decoded) of a device's session events with ``since`` <= t <= ``until``, oldest first."""
    rows = db.query("SELECT t, data FROM events WHERE school = ? AND device = ? AND type = 'session' "
                    "AND t >= ? AND t <= ? ORDER BY t", (school, device, since, until))
    return [(float(r["t"]), json.loads(r["data"])) for r in rows]


def last_heartbeat(db: Database, school: str, device: str) -> float | None:
    """When the device's last heartbeat was stamped (None: unknown device, or none yet)."""
    rows = db.query("SELECT last_heartbeat_t FROM devices WHERE school = ? AND device = ?", (school, device))
    return float(rows[0]["last_heartbeat_t"]) if rows and rows[0]["last_heartbeat_t"] else None


def device_faults(db: Database, school: str, device: str, limit: int = 100) -> list[Row]:
    """A device's faults, open and cleared, the latest opened first."""
    return db.query("SELECT * FROM faults WHERE school = ? AND device = ? ORDER BY opened_t DESC LIMIT ?",
                    (school, device, limit))


def status_log(db: Database, school: str, device: str, since: float) -> list[Row]:
    """A device's status messages received since ``since``, preceded by the last one before it (the state
    at ``since``), oldest first: online, reason, received, t (the device's own stamp)."""
    cols = "SELECT online, reason, received, t FROM status_log WHERE school = ? AND device = ? "
    before = db.query(cols + "AND received < ? ORDER BY received DESC LIMIT 1", (school, device, since))
    after = db.query(cols + "AND received >= ? ORDER BY received", (school, device, since))
    return before + after


def open_faults(db: Database, school: str) -> list[Row]:
    """The school's open faults, the latest first, with their device's class and room."""
    return db.query("SELECT f.id, f.device, f.code, f.severity, f.source, f.opened_t, d.class, d.room "
                    "FROM faults f LEFT JOIN devices d ON d.school = f.school AND d.device = f.device "
                    "WHERE f.school = ? AND f.cleared_t IS NULL ORDER BY f.opened_t DESC", (school,))


def faults_with_tickets(db: Database, ids: Sequence[int]) -> list[Row]:
    """These faults, oldest first, with their device's class and their ticket's id (``ticket``, None
    before the register's next pass)."""
    if not ids:
        return []
    return db.query(f"SELECT f.id, f.device, f.code, f.opened_t, f.cleared_t, d.class, k.id AS ticket "
                    f"FROM faults f LEFT JOIN devices d ON d.school = f.school AND d.device = f.device "
                    f"LEFT JOIN fault_tickets k ON k.fault_id = f.id WHERE f.id IN ({', '.join('?' * len(ids))}) "
                    f"ORDER BY f.opened_t", list(ids))

