"""Applying prepared messages to the store: one transaction per batch, idempotent."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from collector.db import Database
from collector.ingest import EventRow, Prepared, data_json

INSERT_EVENT = ("INSERT INTO events (school, device, id, seq, type, ts, t, received, data, clock_fault) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")


@dataclass
class BatchResult:
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    gaps: int = 0
    statuses: int = 0
    acks: int = 0

    def add(self, other: BatchResult) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


def touch_device(db: Database, school: str, device: str, seen: float) -> None:
    db.execute(
        "INSERT INTO devices (school, device, first_seen, last_seen) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (school, device) DO UPDATE SET last_seen = "
        "CASE WHEN devices.last_seen IS NULL OR devices.last_seen < excluded.last_seen "
        "THEN excluded.last_seen ELSE devices.last_seen END, "
        "first_seen = COALESCE(devices.first_seen, excluded.first_seen)",
        (school, device, seen, seen))


def apply_batch(db: Database, batch: list[Prepared], ack_handler: Any = None) -> BatchResult:
    """Store a batch in one transaction. Raises on a database error (nothing is applied)."""
    res = BatchResult()
    with db.transaction():
        by_device: dict[tuple[str, str], list[EventRow]] = defaultdict(list)
        for p in batch:
            if p.kind == "rejected":
                db.execute("INSERT INTO quarantine (received, topic, code, reason, size, head) "
                           "VALUES (?, ?, ?, ?, ?, ?)", p.quarantine_row())
                res.rejected += 1
                continue
            touch_device(db, p.school, p.device, p.msg.received)
            if p.kind == "status":
                _apply_status(db, p)
                res.statuses += 1
            elif p.kind == "ack":
                if ack_handler is not None:
                    ack_handler(db, p)
                res.acks += 1
            else:
                for row in p.events:
                    if db.execute(INSERT_EVENT, (row.school, row.device, row.id, row.seq, row.type, row.ts,
                                                 row.t, p.msg.received, data_json(row), int(row.clock_fault))):
                        res.stored += 1
                        by_device[(row.school, row.device)].append(row)
                    else:
                        res.duplicates += 1
        for (school, device), rows in by_device.items():
            res.gaps += _apply_device_events(db, school, device, rows)
        for name in ("stored", "duplicates", "rejected", "gaps"):
            value = getattr(res, name)
            if value:
                db.execute("UPDATE counters SET value = value + ? WHERE name = ?", (value, name))
    return res


def _apply_status(db: Database, p: Prepared) -> None:
    s = p.status
    t = s["_t"].timestamp() if "_t" in s else None
    db.execute("INSERT INTO status_log (school, device, online, reason, boot_id, ts, t, received) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (p.school, p.device, int(s["online"]), s.get("reason"), s.get("boot_id"), s.get("ts"), t,
                p.msg.received))
    sets = ["online = ?", "status_reason = ?", "status_t = ?"]
    params: list[Any] = [int(s["online"]), s.get("reason"), p.msg.received]
    if s.get("boot_id"):
        sets.append("boot_id = ?")
        params.append(s["boot_id"])
    if s.get("agent"):
        sets.append("agent_version = ?")
        params.append(s["agent"])
    if not s["online"]:
        sets.append("in_use = 0")
    db.execute(f"UPDATE devices SET {', '.join(sets)} WHERE school = ? AND device = ?",
               (*params, p.school, p.device))


def _apply_device_events(db: Database, school: str, device: str, rows: list[EventRow]) -> int:
    """Seq gaps, in-use state and faults for newly stored events of one device. Returns new gaps."""
    cur = db.query("SELECT last_seq, in_use_t FROM devices WHERE school = ? AND device = ?", (school, device))[0]
    last_seq, in_use_t = cur["last_seq"], cur["in_use_t"] or 0.0
    new_gaps = 0
    now = time.time()
    state: tuple[int, float] | None = None
    for row in sorted(rows, key=lambda r: r.seq):
        if last_seq is None or row.seq == last_seq + 1:
            last_seq = row.seq
        elif row.seq > last_seq + 1:
            db.execute("INSERT INTO gaps (school, device, seq_from, seq_to, opened) VALUES (?, ?, ?, ?, ?)",
                       (school, device, last_seq + 1, row.seq - 1, now))
            new_gaps += 1
            last_seq = row.seq
        else:
            _fill_gap(db, school, device, row.seq, now)
        in_use = _in_use_after(row)
        if in_use is not None and row.t >= in_use_t and not row.clock_fault:
            in_use_t = row.t
            state = (in_use, row.t)
        if row.type == "fault":
            _apply_fault(db, row)
    _apply_clock(db, school, device, rows)
    sets, params = ["last_seq = ?"], [last_seq]
    if state is not None:
        sets += ["in_use = ?", "in_use_t = ?"]
        params += [state[0], state[1]]
    hb = [r.t for r in rows if r.type == "heartbeat" and not r.clock_fault]
    if hb:
        sets.append("last_heartbeat_t = CASE WHEN last_heartbeat_t IS NULL OR last_heartbeat_t < ? "
                    "THEN ? ELSE last_heartbeat_t END")
        params += [max(hb), max(hb)]
    db.execute(f"UPDATE devices SET {', '.join(sets)} WHERE school = ? AND device = ?", (*params, school, device))
    return new_gaps


def _in_use_after(row: EventRow) -> int | None:
    if row.type == "heartbeat":
        return int(bool(row.data.get("in_use")))
    if row.type == "session":
        return int(row.data.get("state") == "start")
    if row.type == "power" and row.data.get("state") in ("off", "sleep"):
        return 0
    return None


def _fill_gap(db: Database, school: str, device: str, seq: int, now: float) -> None:
    gaps = db.query("SELECT id, seq_from, seq_to, filled FROM gaps WHERE school = ? AND device = ? "
                    "AND closed IS NULL AND seq_from <= ? AND seq_to >= ?", (school, device, seq, seq))
    for g in gaps[:1]:
        filled = g["filled"] + 1
        closed = now if filled >= g["seq_to"] - g["seq_from"] + 1 else None
        db.execute("UPDATE gaps SET filled = ?, closed = ? WHERE id = ?", (filled, closed, g["id"]))


def open_fault(db: Database, school: str, device: str, code: str, severity: str, source: str,
               detail: str | None, opened_t: float, event_id: str | None = None) -> bool:
    """Open a fault unless one with the same code is open; True when a new one was opened."""
    if db.query("SELECT 1 AS x FROM faults WHERE school = ? AND device = ? AND code = ? AND cleared_t IS NULL",
                (school, device, code)):
        return False
    db.execute("INSERT INTO faults (school, device, code, severity, source, detail, opened_t, event_id) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (school, device, code, severity, source, detail, opened_t, event_id))
    return True


def close_fault(db: Database, school: str, device: str, code: str, cleared_t: float) -> int:
    return db.execute("UPDATE faults SET cleared_t = ? WHERE school = ? AND device = ? AND code = ? "
                      "AND cleared_t IS NULL", (cleared_t, school, device, code))


def _apply_fault(db: Database, row: EventRow) -> None:
    d = row.data
    if d.get("state") == "raised":
        detail = d.get("detail")
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, ensure_ascii=False)
        open_fault(db, row.school, row.device, d["code"], d["severity"], "agent", detail, row.t, row.id)
    else:
        close_fault(db, row.school, row.device, d["code"], row.t)


def _apply_clock(db: Database, school: str, device: str, rows: list[EventRow]) -> None:
    """An event stamped >5 min ahead opens a 'clock' fault; a later sane event clears it."""
    future = [r for r in rows if r.clock_fault]
    if future:
        open_fault(db, school, device, "clock", "warning", "collector",
                   f"device clock ahead: event {future[0].id} stamped {future[0].ts}", time.time(), future[0].id)
    elif rows:
        close_fault(db, school, device, "clock", time.time())
