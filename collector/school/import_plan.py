"""Re-imports as a difference: what a file adds, removes and changes in the store, then applied.

What a file replaces (its scope) depends on the kind; ``replace=True`` widens it to everything:
- devices: merged: only the devices the file lists (others keep their class); with replace,
  the imported devices the file leaves out lose their class, room, building and floor;
- timetable: the classes the file covers (of a class with only 单周/双周 rows in the file, only
  those weeks' rows); with replace, the whole timetable;
- substitutions: the dates the file covers; with replace, all;
- bell and calendar: a whole document: the file replaces them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from collector.db import Database
from collector.school.import_errors import Warning_, msg
from collector.school.school_imports import Key, Parsed
from collector.school.tables import col_error

Value = tuple[Any, ...]


@dataclass
class Plan:
    kind: str
    school: str
    file: str
    replace: bool
    parsed: Parsed
    added: list[tuple[Key, Value]] = field(default_factory=list)
    removed: list[tuple[Key, Value]] = field(default_factory=list)
    changed: list[tuple[Key, Value, Value]] = field(default_factory=list)
    unchanged: int = 0
    warnings: list[Warning_] = field(default_factory=list)
    new_school: bool = False
    encoding: str | None = None
    count: int = 0  # the file's rows (a grid: its lessons)

    def fingerprint(self) -> str:
        """Changes iff what the plan would write changes: a preview's plan is applied only while it holds."""
        import hashlib

        return hashlib.sha256(repr((self.added, self.removed, self.changed)).encode()).hexdigest()

    def summary(self) -> dict[str, int]:
        return {"added": len(self.added), "removed": len(self.removed), "changed": len(self.changed),
                "unchanged": self.unchanged}


def _current_devices(db: Database, school: str) -> dict[Key, Value]:
    return {(r["device"],): (r["class"], r["room"], r["building"], r["floor"], r["projector"]) for r in db.query(
        "SELECT device, class, room, building, floor, projector FROM devices WHERE school = ? AND class IS NOT NULL "
        "ORDER BY device", (school,))}


def _current_bell(db: Database, school: str) -> dict[Key, Value]:
    return {(r["valid_from"], int(r["period"])): (r["schedule"], int(r["start_min"]), int(r["end_min"]))
            for r in db.query("SELECT * FROM bell_periods WHERE school = ? ORDER BY valid_from, period", (school,))}


def _current_timetable(db: Database, school: str) -> dict[Key, Value]:
    return {(r["class"], int(r["weekday"]), int(r["period"]), r["weeks"]): (r["teacher"], r["subject"],
                                                                               r["room"], r["teacher_group"])
            for r in db.query("SELECT * FROM timetable WHERE school = ? ORDER BY class, weekday, period, weeks",
                              (school,))}


def _current_substitutions(db: Database, school: str) -> dict[Key, Value]:
    return {(r["date"], r["class"], int(r["period"])): (r["teacher"], r["subject"])
            for r in db.query("SELECT * FROM substitutions WHERE school = ? ORDER BY date, class, period",
                              (school,))}


def _current_calendar(db: Database, school: str) -> dict[Key, Value]:
    out: dict[Key, Value] = {}
    for r in db.query("SELECT * FROM calendar_days WHERE school = ? ORDER BY date", (school,)):
        fw = r["follows_weekday"]
        out[("day", r["date"])] = (r["kind"], None if fw is None else int(fw))
    for r in db.query("SELECT * FROM terms WHERE school = ? ORDER BY start_date", (school,)):
        out[("term", r["start_date"])] = (r["name"], r["end_date"])
    return out


def _current_assets(db: Database, school: str) -> dict[Key, Value]:
    from collector.school.school_imports import ASSET_VALUES

    return {(r["code"],): tuple(r[c] for c in ASSET_VALUES)
            for r in db.query("SELECT * FROM assets WHERE school = ? ORDER BY code", (school,))}


def _scope_timetable(p: Parsed) -> Callable[[Key], bool]:
    weeks: dict[str, set[str]] = {}
    for klass, _wd, _p, w in p.records:
        weeks.setdefault(klass, set()).add(w)
    return lambda k: k[0] in weeks and ("all" in weeks[k[0]] or k[3] in weeks[k[0]])


def _scope_substitutions(p: Parsed) -> Callable[[Key], bool]:
    dates = {k[0] for k in p.records}
    return lambda k: k[0] in dates


SCOPES: dict[str, Callable[[Parsed], Callable[[Key], bool]]] = {
    "devices": lambda p: lambda k: k in p.records,
    "bell": lambda p: lambda k: True,
    "timetable": _scope_timetable,
    "substitutions": _scope_substitutions,
    "calendar": lambda p: lambda k: True,
    "assets": lambda p: lambda k: k in p.records,
}
CURRENT: dict[str, Callable[[Database, str], dict[Key, Value]]] = {
    "devices": _current_devices, "bell": _current_bell, "timetable": _current_timetable,
    "substitutions": _current_substitutions, "calendar": _current_calendar, "assets": _current_assets,
}


def diff(db: Database, plan: Plan) -> Plan:
    current = CURRENT[plan.kind](db, plan.school)
    in_scope = (lambda k: True) if plan.replace else SCOPES[plan.kind](plan.parsed)
    new = plan.parsed.records
    for k, value in list(new.items()):
        old = current.get(k)
        if old is not None and plan.parsed.keep:
            value = new[k] = tuple(old[i] if i in plan.parsed.keep else x for i, x in enumerate(value))
        if old is None:
            plan.added.append((k, value))
        elif tuple(old) != tuple(value):
            plan.changed.append((k, old, value))
        else:
            plan.unchanged += 1
    plan.removed = [(k, old) for k, old in current.items() if k not in new and in_scope(k)]
    if plan.kind == "timetable":
        _check_kept_slots(plan, current)
    return plan


def _check_kept_slots(plan: Plan, current: dict[Key, Value]) -> None:
    """A kept every-week row and a new 单周/双周 row (or the reverse) in the same slot cannot both stand."""
    removed = {k for k, _ in plan.removed}
    kept = {(k[0], k[1], k[2]): k[3] for k in current if k not in removed and k not in plan.parsed.records}
    for k, row in plan.parsed.rows.items():
        w = kept.get((k[0], k[1], k[2]))
        if w is not None and (w == "all" or k[3] == "all" or w == k[3]):
            raise col_error(plan.file, row, "period", msg("slot_kept", klass=k[0], wd=k[1], period=k[2]))


def _write_devices(db: Database, plan: Plan) -> None:
    s = plan.school
    for (dev,), _old in plan.removed:
        db.execute("UPDATE devices SET class = NULL, room = NULL, building = NULL, floor = NULL, projector = NULL "
                   "WHERE school = ? AND device = ?", (s, dev))
    for (dev,), value in [*plan.added, *((k, new) for k, _o, new in plan.changed)]:
        db.execute("INSERT INTO devices (school, device, class, room, building, floor, projector) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (school, device) DO UPDATE SET class = excluded.class, "
                   "room = excluded.room, building = excluded.building, floor = excluded.floor, "
                   "projector = excluded.projector", (s, dev, *value))
    if any(len(v) > 4 and v[4] != (o[4] if o is not None and len(o) > 4 else None)
           for v, o in [*((v, None) for _k, v in plan.added), *((n, o) for _k, o, n in plan.changed),
                        *(((None,) * 5, o) for _k, o in plan.removed)]):
        from collector.devices.policy import republish

        republish(db, s)  # the agents learn their projector from the policy (`projectors`)


# kind -> [(key prefix or None, table, key columns, value columns)]
TABLES: dict[str, list[tuple[str | None, str, tuple[str, ...], tuple[str, ...]]]] = {
    "bell": [(None, "bell_periods", ("valid_from", "period"), ("schedule", "start_min", "end_min"))],
    "timetable": [(None, "timetable", ("class", "weekday", "period", "weeks"), ("teacher", "subject", "room",
                                                                                     "teacher_group"))],
    "substitutions": [(None, "substitutions", ("date", "class", "period"), ("teacher", "subject"))],
    "calendar": [("day", "calendar_days", ("date",), ("kind", "follows_weekday")),
                 ("term", "terms", ("start_date",), ("name", "end_date"))],
}


def _write_rows(db: Database, plan: Plan) -> None:
    gone = [k for k, _ in plan.removed] + [k for k, _o, _n in plan.changed]
    put = [*plan.added, *((k, new) for k, _o, new in plan.changed)]
    for prefix, table, kcols, vcols in TABLES[plan.kind]:
        def mine(k: Key) -> Key | None:
            return k if prefix is None else (k[1:] if k[0] == prefix else None)  # noqa: B023
        where = " AND ".join(f"{c} = ?" for c in kcols)
        dels = [(plan.school, *kk) for k in gone if (kk := mine(k)) is not None]
        if dels:
            db.executemany(f"DELETE FROM {table} WHERE school = ? AND {where}", dels)
        cols = ("school", *kcols, *vcols)
        ins = [(plan.school, *kk, *value) for k, value in put if (kk := mine(k)) is not None]
        if ins:
            db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", ins)


def _write_assets(db: Database, plan: Plan) -> None:
    """Upsert by asset code (an item's stocktake history follows its id); with replace, items the file
    leaves out are deleted. A PC row the agent made (code = device id) merges into the imported row
    that names the same device."""
    from collector.school.school_imports import ASSET_VALUES

    s = plan.school
    db.executemany("DELETE FROM assets WHERE school = ? AND code = ?", [(s, k[0]) for k, _old in plan.removed])
    sets = ", ".join(f"{c} = ?" for c in ASSET_VALUES)
    for (code,), value in [*plan.added, *((k, new) for k, _o, new in plan.changed)]:
        row = dict(zip(ASSET_VALUES, value, strict=True))
        if not db.query("SELECT 1 AS x FROM assets WHERE school = ? AND code = ?", (s, code)):
            db.execute(f"INSERT INTO assets (school, code, {', '.join(ASSET_VALUES)}, updated, updated_by) "
                       f"VALUES (?, ?, {', '.join('?' * len(value))}, ?, 'import')", (s, code, *value, time.time()))
        else:
            db.execute(f"UPDATE assets SET {sets}, updated = ?, updated_by = 'import' WHERE school = ? AND code = ?",
                       (*value, time.time(), s, code))
        if row["device"]:
            _merge_agent_row(db, s, code, row["device"])


def _merge_agent_row(db: Database, school: str, code: str, device: str) -> None:
    auto = db.query("SELECT * FROM assets WHERE school = ? AND device = ? AND code <> ? AND updated_by = 'agent' "
                    "AND code IN (?, ?)", (school, device, code, device, f"{device}-pc"))
    for a in auto:
        for col in ("model", "serial", "maker", "board_serial"):
            db.execute(f"UPDATE assets SET {col} = ? WHERE school = ? AND code = ? AND {col} IS NULL",
                       (a[col], school, code))
        db.execute("DELETE FROM assets WHERE id = ?", (a["id"],))


def write(db: Database, plan: Plan) -> None:
    if plan.kind == "assets":
        _write_assets(db, plan)
    else:
        (_write_devices if plan.kind == "devices" else _write_rows)(db, plan)
    if plan.kind == "timetable":
        _write_groups(db, plan)


def _write_groups(db: Database, plan: Plan) -> None:
    """A teacher has one 教研组: the group the file gives a teacher goes on all their stored lessons."""
    groups = {value[0]: value[3] for value in plan.parsed.records.values() if len(value) > 3 and value[3]}
    if groups:
        db.executemany("UPDATE timetable SET teacher_group = ? WHERE school = ? AND teacher = ?",
                       [(g, plan.school, t) for t, g in sorted(groups.items())])

