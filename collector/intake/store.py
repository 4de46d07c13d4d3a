"""Applying prepared messages to the store: one transaction per batch, idempotent, few round trips.

A batch costs a handful of statements whatever its size (this matters on PostgreSQL, where
each statement is a network round trip): one upsert touching every device of the batch,
multi-row inserts for events (``ON CONFLICT DO NOTHING RETURNING`` tells which were new) and
quarantine, one read of the devices' state, one ``executemany`` writing it back, one counters
update. Irregular things (gaps, faults, statuses, acks) add their own statements.

Several collectors may store batches concurrently (district set-up, MQTT shared
subscriptions). The device upsert locks the batch's device rows in sorted order for the rest
of the transaction (PostgreSQL row locks; SQLite locks the whole database), so one device's
batches are applied one after the other and two collectors never deadlock. Shared
subscriptions deliver a device's messages round-robin, so batches may arrive out of seq order:
a gap that is filled within ``REORDER_WINDOW_S`` was a reordering, not a loss, and is removed
again (the ``gaps`` counter goes back down); fault raise/clear pairs are applied by their
order on the device, not their arrival.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, Callable

from collector.db import Database
from collector.devices.ingest import EventRow, Prepared, data_json
from collector.devices.projectors import apply_projector
from collector.intake.inventory import apply_drift, apply_inventory
from collector.intake.protection import apply_protection
from collector.lessons.usage_marks import mark_events

EVENT_COLS = "(school, device, id, seq, type, ts, t, received, data, clock_fault)"
INSERT_EVENT = f"INSERT INTO events {EVENT_COLS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
CHUNK = 500  # rows per multi-row statement (10 parameters each: well inside both backends' limits)
REORDER_WINDOW_S = 10.0
COUNTERS = ("duplicates", "gaps", "rejected", "stored")  # sorted: the same lock order everywhere
_SEQ = attrgetter("seq")
_KEY = itemgetter(0, 1, 2)  # school, device, id


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


@dataclass
class DeviceState:
    last_seq: int | None
    in_use: int
    in_use_t: float
    last_heartbeat_t: float | None
    clock_open: bool


def _values(n_rows: int, n_cols: int) -> str:
    one = "(" + ", ".join("?" * n_cols) + ")"
    return ", ".join([one] * n_rows)


def touch_device(db: Database, school: str, device: str, seen: float) -> None:
    touch_devices(db, {(school, device): seen})


def touch_devices(db: Database, seen: dict[tuple[str, str], float]) -> None:
    """Create or update devices' first/last seen in one statement, locking their rows in key order."""
    keys = sorted(seen)
    for i in range(0, len(keys), CHUNK):
        part = keys[i:i + CHUNK]
        if db.dialect == "postgresql":  # three array parameters instead of 4 per row: cheap to parse
            source = "SELECT s, d, t, t FROM unnest(?::text[], ?::text[], ?::float8[]) AS u(s, d, t) ORDER BY s, d"
            params: list[Any] = [[k[0] for k in part], [k[1] for k in part], [seen[k] for k in part]]
        else:
            source = f"VALUES {_values(len(part), 4)}"
            params = []
            for k in part:
                params += [k[0], k[1], seen[k], seen[k]]
        db.execute(
            f"INSERT INTO devices (school, device, first_seen, last_seen) {source} "
            "ON CONFLICT (school, device) DO UPDATE SET last_seen = "
            "CASE WHEN devices.last_seen IS NULL OR devices.last_seen < excluded.last_seen "
            "THEN excluded.last_seen ELSE devices.last_seen END, "
            "first_seen = COALESCE(devices.first_seen, excluded.first_seen)", params)


PG_EVENT_SOURCE = ("SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], "
                   "?::float8[], ?::float8[], ?::text[], ?::bigint[])")


def insert_events(db: Database, rows: list[tuple[EventRow, float]]) -> list[bool]:
    """Insert events (row, received); for each, True if it was new, False if a duplicate."""
    new: list[bool] = []
    for i in range(0, len(rows), CHUNK):
        part = rows[i:i + CHUNK]
        values = [(r.school, r.device, r.id, r.seq, r.type, r.ts, r.t, received, data_json(r), int(r.clock_fault))
                  for r, received in part]
        values.sort(key=_KEY)  # primary key order (stable: of two copies the first to arrive is kept): cheaper
        params: list[Any]
        if db.dialect == "postgresql":  # one array per column
            source, params = PG_EVENT_SOURCE, [list(col) for col in zip(*values, strict=True)]
        else:
            source, params = f"VALUES {_values(len(part), 10)}", list(chain.from_iterable(values))
        insert = f"INSERT INTO events {EVENT_COLS} {source} ON CONFLICT DO NOTHING"
        if db.dialect == "sqlite" and _all_new(db, insert, params, len(part)):
            new += [True] * len(part)
            continue
        got = db.query(insert + " RETURNING school, device, id", params)
        if len(got) == len(part):  # a row returned for each: all were new
            new += [True] * len(part)
            continue
        inserted = {(g["school"], g["device"], g["id"]) for g in got}
        for r, _ in part:
            key = (r.school, r.device, r.id)
            new.append(key in inserted)
            inserted.discard(key)  # a second copy within the same batch is a duplicate
    return new


def _all_new(db: Database, insert: str, params: list[Any], n: int) -> bool:
    """SQLite: run ``insert`` without RETURNING (whose rows cost CPU); True when all ``n`` rows were new,
    else False with nothing inserted (the caller then learns which were new with RETURNING)."""
    db.execute("SAVEPOINT new_events")
    if db.execute(insert, params) == n:
        db.execute("RELEASE new_events")
        return True
    db.execute("ROLLBACK TO new_events")
    db.execute("RELEASE new_events")
    return False


def apply_batch(db: Database, batch: list[Prepared], ack_handler: Any = None,
                counter_shard: str | None = None) -> BatchResult:
    """Store a batch in one transaction. Raises on a database error (nothing is applied).

    With ``counter_shard`` (a collector on a shared subscription passes its client id) the ingest
    counters go to that collector's own rows in ``counter_shards``: concurrent collectors would
    otherwise wait on each other for the one ``counters`` row until each commit.
    """
    res = BatchResult()
    with db.transaction():
        quarantined = [p.quarantine_row() for p in batch if p.kind == "rejected"]
        res.rejected = len(quarantined)
        if quarantined:
            db.executemany("INSERT INTO quarantine (received, topic, code, reason, size, head) "
                           "VALUES (?, ?, ?, ?, ?, ?)", quarantined)
        touch_devices(db, _last_seen(batch))
        candidates: list[tuple[EventRow, float]] = []
        for p in batch:
            if p.kind == "events":
                received = p.msg.received
                candidates += [(row, received) for row in p.events]
            elif p.kind == "status":
                _apply_status(db, p)
                res.statuses += 1
            elif p.kind == "ack":
                if ack_handler is not None:
                    ack_handler(db, p)
                res.acks += 1
        by_device: dict[tuple[str, str], list[EventRow]] = {}
        for (row, _), is_new in zip(candidates, insert_events(db, candidates), strict=True):
            if is_new:
                key = (row.school, row.device)
                rows = by_device.get(key)
                if rows is None:
                    by_device[key] = [row]
                else:
                    rows.append(row)
        res.stored = sum(len(rows) for rows in by_device.values())
        res.duplicates = len(candidates) - res.stored
        res.gaps = _apply_devices(db, by_device)
        _count(db, res, counter_shard)
    return res


def _last_seen(batch: list[Prepared]) -> dict[tuple[str, str], float]:
    """When each device of the batch (whose messages were not rejected) was last heard from."""
    seen: dict[tuple[str, str], float] = {}
    for p in batch:
        if p.kind != "rejected":
            key, received = (p.school, p.device), p.msg.received
            if seen.get(key, received) <= received:
                seen[key] = received
    return seen


def _apply_devices(db: Database, by_device: dict[tuple[str, str], list[EventRow]]) -> int:
    """Each device's state after its newly stored events, written back at once; returns the change in gaps."""
    keys = sorted(by_device)
    states = _device_states(db, keys)
    updates = []
    gaps = 0
    for key in keys:
        new_gaps, st = _apply_device_events(db, key[0], key[1], by_device[key], states[key])
        gaps += new_gaps
        updates.append((st.last_seq, st.in_use, st.in_use_t, st.last_heartbeat_t, key[0], key[1]))
    _write_states(db, updates)
    for school in sorted({k[0] for k in keys}):  # sorted: the same lock order everywhere
        mark_events(db, school, [(r.type, r.t) for k in keys if k[0] == school
                                 for r in by_device[k] if not r.clock_fault])
    return gaps


def _count(db: Database, res: BatchResult, shard: str | None) -> None:
    deltas = [(getattr(res, name), name) for name in COUNTERS if getattr(res, name)]
    if not deltas:
        return
    if shard is None:
        db.executemany("UPDATE counters SET value = value + ? WHERE name = ?", deltas)
    else:
        db.executemany("INSERT INTO counter_shards (name, shard, value) VALUES (?, ?, ?) ON CONFLICT (name, shard) "
                       "DO UPDATE SET value = counter_shards.value + excluded.value",
                       [(name, shard, value) for value, name in deltas])


def _write_states(db: Database, updates: list[tuple[Any, ...]]) -> None:
    if not updates:
        return
    if db.dialect == "postgresql":
        cols = [list(c) for c in zip(*updates, strict=True)]
        db.execute("UPDATE devices SET last_seq = u.ls, in_use = u.iu, in_use_t = u.iut, last_heartbeat_t = u.hb "
                   "FROM unnest(?::bigint[], ?::bigint[], ?::float8[], ?::float8[], ?::text[], ?::text[]) "
                   "AS u(ls, iu, iut, hb, s, d) WHERE devices.school = u.s AND devices.device = u.d", cols)
    else:
        db.executemany("UPDATE devices SET last_seq = ?, in_use = ?, in_use_t = ?, last_heartbeat_t = ? "
                       "WHERE school = ? AND device = ?", updates)


def _device_states(db: Database, keys: list[tuple[str, str]]) -> dict[tuple[str, str], DeviceState]:
    """The stored state of these devices, read by primary key (school, then its devices in chunks)."""
    out: dict[tuple[str, str], DeviceState] = {}
    by_school: dict[str, list[str]] = {}
    for school, device in keys:
        by_school.setdefault(school, []).append(device)
    for school, devices in sorted(by_school.items()):
        for i in range(0, len(devices), CHUNK):
            names = devices[i:i + CHUNK]
            params: list[Any]
            if db.dialect == "postgresql":
                where, params = "= ANY(?::text[])", [school, names]
            else:
                where, params = f"IN ({', '.join('?' * len(names))})", [school, *names]
            rows = db.query(
                "SELECT d.device, d.last_seq, d.in_use, d.in_use_t, d.last_heartbeat_t, "
                "(SELECT COUNT(*) FROM faults f WHERE f.school = d.school AND f.device = d.device "
                " AND f.code = 'clock' AND f.cleared_t IS NULL) AS clock_open "
                f"FROM devices d WHERE d.school = ? AND d.device {where}", params)
            for r in rows:
                out[(school, r["device"])] = DeviceState(r["last_seq"], int(r["in_use"] or 0), r["in_use_t"] or 0.0,
                                                         r["last_heartbeat_t"], bool(r["clock_open"]))
    return out


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


def _apply_device_events(db: Database, school: str, device: str, rows: list[EventRow],
                         st: DeviceState) -> tuple[int, DeviceState]:
    """Seq gaps, in-use state and faults for newly stored events of one device (its row is locked).

    Returns the change in the number of gaps and the device's new state (written by the caller).
    """
    last_seq = st.last_seq
    new_gaps = 0
    now = time.time()
    hb: float | None = None
    ahead = False
    for row in sorted(rows, key=_SEQ) if len(rows) > 1 else rows:
        seq = row.seq
        if last_seq is None or seq == last_seq + 1:
            last_seq = seq
        elif seq > last_seq + 1:
            db.execute("INSERT INTO gaps (school, device, seq_from, seq_to, opened) VALUES (?, ?, ?, ?, ?)",
                       (school, device, last_seq + 1, seq - 1, now))
            new_gaps += 1
            last_seq = seq
        else:
            new_gaps += _fill_gap(db, school, device, seq, now)
        if row.clock_fault:
            ahead = True
        else:
            in_use = _in_use_after(row)
            if in_use is not None and row.t >= st.in_use_t:
                st.in_use, st.in_use_t = in_use, row.t
            if row.type == "heartbeat" and (hb is None or row.t > hb):
                hb = row.t
        apply = _APPLY_TYPE.get(row.type)
        if apply is not None:
            apply(db, row)
    st.last_seq = last_seq
    future = next(r for r in rows if r.clock_fault) if ahead else None  # the first to arrive
    _apply_clock(db, school, device, future, bool(rows) and st.clock_open)
    if hb is not None and (st.last_heartbeat_t is None or st.last_heartbeat_t < hb):
        st.last_heartbeat_t = hb
    return new_gaps, st


def _in_use_after(row: EventRow) -> int | None:
    if row.type == "heartbeat":
        return int(bool(row.data.get("in_use")))
    if row.type == "session":
        return int(row.data.get("state") == "start")
    if row.type == "power" and row.data.get("state") in ("off", "sleep"):
        return 0
    return None


def _fill_gap(db: Database, school: str, device: str, seq: int, now: float) -> int:
    """Count a late event into its gap; a gap filled within the reorder window is removed (returns -1)."""
    gaps = db.query("SELECT id, seq_from, seq_to, filled, opened FROM gaps WHERE school = ? AND device = ? "
                    "AND closed IS NULL AND seq_from <= ? AND seq_to >= ?", (school, device, seq, seq))
    for g in gaps[:1]:
        filled = g["filled"] + 1
        if filled < g["seq_to"] - g["seq_from"] + 1:
            db.execute("UPDATE gaps SET filled = ? WHERE id = ?", (filled, g["id"]))
        elif now - g["opened"] <= REORDER_WINDOW_S:
            db.execute("DELETE FROM gaps WHERE id = ?", (g["id"],))
            return -1
        else:
            db.execute("UPDATE gaps SET filled = ?, closed = ? WHERE id = ?", (filled, now, g["id"]))
    return 0


def open_fault(db: Database, school: str, device: str, code: str, severity: str, source: str,
               detail: str | None, opened_t: float, event_id: str | None = None, *,
               cleared_t: float | None = None, even_if_open: bool = False) -> int | None:
    """Open a fault unless one with the same code is open (``even_if_open``: open it anyway, as a person's
    register entry does); the new fault's id, None when none was opened. ``cleared_t``: a fault entered
    afterwards, already over."""
    if not even_if_open and db.query("SELECT 1 AS x FROM faults WHERE school = ? AND device = ? AND code = ? "
                                     "AND cleared_t IS NULL", (school, device, code)):
        return None
    rows = db.query("INSERT INTO faults (school, device, code, severity, source, detail, opened_t, cleared_t, "
                    "event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    (school, device, code, severity, source, detail, opened_t, cleared_t, event_id))
    return int(rows[0]["id"])


def close_fault(db: Database, school: str, device: str, code: str, cleared_t: float) -> int:
    """Close the open fault(s) of that code that were opened at or before ``cleared_t``."""
    return db.execute("UPDATE faults SET cleared_t = ? WHERE school = ? AND device = ? AND code = ? "
                      "AND cleared_t IS NULL AND opened_t <= ?", (cleared_t, school, device, code, cleared_t))


def _cleared_later(db: Database, row: EventRow, code: str) -> float | None:
    """The time of a 'cleared' of this fault code with a higher seq already stored (reordered delivery, or
    raised and cleared in one batch), else None."""
    for r in db.query("SELECT t, data FROM events WHERE school = ? AND device = ? AND type = 'fault' AND seq > ? "
                      "ORDER BY seq", (row.school, row.device, row.seq)):
        d = json.loads(r["data"])
        if d.get("code") == code and d.get("state") == "cleared":
            return float(r["t"])
    return None


def _apply_fault(db: Database, row: EventRow) -> None:
    d = row.data
    if d.get("state") == "raised":
        cleared = _cleared_later(db, row, d["code"])
        detail = d.get("detail")
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, ensure_ascii=False)
        opened = open_fault(db, row.school, row.device, d["code"], d["severity"], "agent", detail, row.t, row.id)
        if opened is not None and cleared is not None:  # already over: kept in the history (usage rates), closed
            close_fault(db, row.school, row.device, d["code"], max(cleared, row.t))
    else:
        close_fault(db, row.school, row.device, d["code"], row.t)


def _apply_clock(db: Database, school: str, device: str, future: EventRow | None, clear: bool) -> None:
    """An event stamped >5 min ahead (``future``) opens a 'clock' fault; a later sane event clears it."""
    if future is not None:
        open_fault(db, school, device, "clock", "warning", "collector",
                   f"device clock ahead: event {future.id} stamped {future.ts}", time.time(), future.id)
    elif clear:
        close_fault(db, school, device, "clock", time.time())


# event types that change more than the device's row, and what applies them
_APPLY_TYPE: dict[str, Callable[[Database, EventRow], object]] = {
    "fault": _apply_fault, "inventory": lambda db, row: apply_inventory(db, row, row.received),
    "drift": apply_drift, "protection": apply_protection, "projector": apply_projector}
