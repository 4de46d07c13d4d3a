"""Reading device state and ingest counters (what /api/v1/devices and stats/ingest return)."""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from collector.db import Database
from collector.devices import policy

DEFAULT_TZ = "Asia/Shanghai"
DEFAULT_HEARTBEAT_S = 60
MISSED_HEARTBEATS = 3


def school_tz(db: Database, school: str) -> ZoneInfo:
    rows = db.query("SELECT tz FROM schools WHERE school = ?", (school,))
    return ZoneInfo(rows[0]["tz"] if rows else DEFAULT_TZ)


def school_settings(db: Database, school: str) -> dict[str, Any]:
    rows = db.query("SELECT settings FROM schools WHERE school = ?", (school,))
    return json.loads(rows[0]["settings"]) if rows else {}


def ensure_school(db: Database, school: str, name: str | None = None, tz: str | None = None) -> None:
    db.execute("INSERT INTO schools (school, name, tz) VALUES (?, ?, ?) ON CONFLICT (school) DO NOTHING",
               (school, name, tz or DEFAULT_TZ))
    if name:
        db.execute("UPDATE schools SET name = ? WHERE school = ?", (name, school))


def schools(db: Database) -> list[str]:
    """Every school the store knows, sorted: registered ones and those only devices have named."""
    rows = db.query("SELECT school FROM schools UNION SELECT DISTINCT school FROM devices")
    return sorted(r["school"] for r in rows)


def device_classes(db: Database, school: str) -> dict[str, str | None]:
    """Each device of the school -> the class its room belongs to (None when unknown)."""
    return {r["device"]: r["class"] for r in db.query("SELECT device, class FROM devices WHERE school = ?",
                                                      (school,))}


def device_places(db: Database, school: str) -> list[dict[str, Any]]:
    """The school's devices with their class, room, building and floor, in building/floor/room order."""
    return db.query("SELECT device, class, room, building, floor FROM devices WHERE school = ? "
                    "ORDER BY building, floor, room, device", (school,))


def iso(t: float | None, tz: ZoneInfo) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def effective_online(row: dict[str, Any], now: float, heartbeat_s: float = DEFAULT_HEARTBEAT_S) -> bool:
    """Online by its last status, and heard from within three heartbeat intervals."""
    if not row.get("online"):
        return False
    last = row.get("last_seen")
    return last is not None and now - last <= MISSED_HEARTBEATS * heartbeat_s


def list_devices(db: Database, school: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    where, params = ("WHERE d.school = ?", [school]) if school else ("", [])
    rows = db.query(f"SELECT d.* FROM devices d {where} ORDER BY d.school, d.building, d.floor, d.room, d.device",
                    params)
    faults: dict[tuple[str, str], list[str]] = {}
    for f in db.query(f"SELECT school, device, code FROM faults WHERE cleared_t IS NULL "
                      f"{'AND school = ?' if school else ''} ORDER BY opened_t", params):
        faults.setdefault((f["school"], f["device"]), []).append(f["code"])
    tzs: dict[str, ZoneInfo] = {}
    hb: dict[str, float] = {}
    out = []
    for r in rows:
        s = r["school"]
        if s not in tzs:
            tzs[s] = school_tz(db, s)
            hb[s] = policy.heartbeat_s(db, s)
        online = effective_online(r, now, hb[s])
        out.append({
            "device": r["device"], "school": s, "class": r["class"], "room": r["room"],
            "building": r["building"], "floor": r["floor"],
            "online": online, "in_use": bool(online and r["in_use"]),
            "last_seen": iso(r["last_seen"], tzs[s]), "open_faults": faults.get((s, r["device"]), []),
            "agent": r["agent_version"], "boot_id": r["boot_id"], "status_reason": r["status_reason"],
        })
    return out


def ingest_stats(db: Database) -> dict[str, int]:
    rows = db.query("SELECT name, value FROM counters")
    values = {r["name"]: int(r["value"]) for r in rows}
    for r in db.query("SELECT name, SUM(value) AS value FROM counter_shards GROUP BY name"):  # district collectors
        values[r["name"]] = values.get(r["name"], 0) + int(r["value"])
    return {k: values.get(k, 0) for k in ("stored", "duplicates", "rejected", "gaps")}


def quarantine(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    return db.query("SELECT * FROM quarantine ORDER BY id DESC LIMIT ?", (limit,))
