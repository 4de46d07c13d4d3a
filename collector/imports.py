"""`bbt import KIND FILE --school S` (CONTRACT §2): validate every row, then apply atomically."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import protocol
from collector.db import Database
from collector.registry import ensure_school
from collector.school_imports import SCHOOL_IMPORTERS
from collector.tables import ImportError_, col_error, read_table
from collector.usage_marks import invalidate_school


def import_devices(db: Database, school: str, path: str | Path) -> int:
    rows = read_table(path, ("device", "class"), ("room", "building", "floor"))
    seen: dict[str, int] = {}
    records = []
    for r in rows:
        dev = r.values["device"]
        if not protocol.valid_id(dev):
            raise col_error(path, r, "device", f"{dev!r} must match {protocol.ID_PATTERN}")
        if dev in seen:
            raise col_error(path, r, "device", f"{dev!r} repeats line {seen[dev]}")
        seen[dev] = r.line
        if not r.values["class"]:
            raise col_error(path, r, "class", "is empty")
        records.append((dev, r.values["class"], r.values.get("room") or None,
                        r.values.get("building") or None, r.values.get("floor") or None))
    with db.transaction():
        ensure_school(db, school)
        db.execute("UPDATE devices SET class = NULL, room = NULL, building = NULL, floor = NULL WHERE school = ?",
                   (school,))
        for dev, klass, room, building, floor in records:
            db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (school, device) DO UPDATE SET class = excluded.class, room = excluded.room, "
                       "building = excluded.building, floor = excluded.floor",
                       (school, dev, klass, room, building, floor))
        invalidate_school(db, school)
    return len(records)


IMPORTERS: dict[str, Callable[[Database, str, Any], int]] = {
    "devices": import_devices,
    **SCHOOL_IMPORTERS,
}


def classes_without_device(db: Database, school: str) -> list[str]:
    """Timetable classes with no imported device: their lessons are "no device" (无设备) and left out
    of every rate (collector.attribution.attribute)."""
    return [r["class"] for r in db.query(
        "SELECT DISTINCT class FROM timetable WHERE school = ? AND class NOT IN "
        "(SELECT class FROM devices WHERE school = ? AND class IS NOT NULL) ORDER BY class", (school, school))]


def import_warnings(db: Database, kind: str, school: str) -> list[str]:
    """What a user should know after a successful import (the import itself stands)."""
    if kind not in ("timetable", "devices"):
        return []
    missing = classes_without_device(db, school)
    if not missing:
        return []
    return [f"课表中有 {len(missing)} 个班级没有设备，其课节记为“无设备”，不计入使用率："
            f"{'、'.join(missing)} (classes with no device: their lessons are left out of the rates)"]


def run_import(db: Database, kind: str, school: str, path: str | Path) -> int:
    if not protocol.valid_id(school):
        raise ImportError_(f"school {school!r} must match {protocol.ID_PATTERN}")
    if kind not in IMPORTERS:
        raise ImportError_(f"unknown import kind {kind!r}; one of {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[kind](db, school, path)
