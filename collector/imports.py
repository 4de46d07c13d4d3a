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


def run_import(db: Database, kind: str, school: str, path: str | Path) -> int:
    if not protocol.valid_id(school):
        raise ImportError_(f"school {school!r} must match {protocol.ID_PATTERN}")
    if kind not in IMPORTERS:
        raise ImportError_(f"unknown import kind {kind!r}; one of {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[kind](db, school, path)
