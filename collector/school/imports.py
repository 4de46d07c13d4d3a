"""`bbt import KIND FILE --school S` (protocol.md §2): read, validate every row, compare, then apply atomically.

``plan_import`` reads the file and computes what it would change (collector.school.import_plan) with
the warnings a school should see; ``apply_plan`` writes it in one transaction. ``run_import``
does both (the CLI and scripts); the import page shows the plan and applies it on confirmation.

An unknown school is refused unless ``create_school``, except the first school of an empty store
(no school imported and no device heard from), which its first import creates.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import protocol
from collector.db import Database
from collector.devices.registry import ensure_school
from collector.lessons.usage_marks import invalidate_school
from collector.school.import_columns import KINDS
from collector.school.import_errors import ImportError_, Warning_, Where, msg
from collector.school.import_plan import Plan, diff, write
from collector.school.readers import read_book
from collector.school.school_imports import PARSERS, Parsed
from collector.school.tables import Table, table_of
from collector.school.timetable_grid import grid_rows

IMPORTERS = tuple(KINDS)  # the kinds, in the order the import page lists them


def known_schools(db: Database) -> list[str]:
    rows = db.query("SELECT school FROM schools UNION SELECT DISTINCT school FROM devices ORDER BY school")
    return [r["school"] for r in rows]


def check_school(db: Database, school: str, create_school: bool) -> bool:
    """True when the import creates the school; raises for an unknown one not to be created."""
    if not protocol.valid_id(school):
        raise ImportError_(msg("bad_school", school=school, pattern=protocol.ID_PATTERN))
    known = known_schools(db)
    if school in known:
        return False
    if known and not create_school:
        raise ImportError_(msg("unknown_school", school=school, known=", ".join(known)))
    return True


def read_file(kind: str, path: str | Path, display_name: str | None = None) -> tuple[Table, list[Warning_]]:
    """The file's rows in canonical columns; a timetable may also be grids (collector.school.timetable_grid)."""
    if kind not in KINDS:
        raise ImportError_(msg("unknown_kind", kind=kind, kinds=", ".join(KINDS)))
    book = read_book(path, display_name)
    required, optional = KINDS[kind]
    if kind != "timetable":
        return table_of(book, required, optional), []
    try:
        return table_of(book, required, optional), []
    except ImportError_ as flat_error:
        rows, warnings = grid_rows(book)
        m = flat_error.msg
        if not rows:
            if m is not None and m.key == "missing_columns" and len(m.params["columns"].split(", ")) == len(required):
                raise ImportError_(msg("no_grid"), file=book.name) from None  # no column found: not a table either
            raise
        return Table(book.name, rows, book), warnings


def _bell_periods(db: Database, school: str) -> set[int]:
    return {int(r["period"]) for r in db.query("SELECT DISTINCT period FROM bell_periods WHERE school = ?", (school,))}


def _timetable_names(db: Database, school: str, col: str) -> set[str]:
    return {r[col] for r in db.query(f"SELECT DISTINCT {col} FROM timetable WHERE school = ?", (school,))}


def warn_periods(db: Database, plan: Plan) -> list[Warning_]:
    """Rows whose period the bell schedule lacks (once the school has a bell schedule)."""
    periods = _bell_periods(db, plan.school)
    if not periods:
        return []
    return [Warning_(_where(plan, k, "period"), msg("w_period_not_in_bell", period=k[2]))
            for k in plan.parsed.records if k[2] not in periods]  # period is the key's third part


def warn_names(db: Database, plan: Plan) -> list[Warning_]:
    """Classes (devices, substitutions) and teachers (substitutions) the timetable does not have."""
    classes = _timetable_names(db, plan.school, "class")
    if not classes:
        return []
    teachers = _timetable_names(db, plan.school, "teacher") if plan.kind == "substitutions" else set()
    out = []
    for k, value in plan.parsed.records.items():
        klass = value[0] if plan.kind == "devices" else k[1]
        if klass not in classes:
            out.append(Warning_(_where(plan, k, "class"), msg("w_class_not_in_timetable", klass=klass)))
        if plan.kind == "substitutions" and value[0] not in ("", "-", *teachers):
            out.append(Warning_(_where(plan, k, "teacher"), msg("w_teacher_not_in_timetable", teacher=value[0])))
    return out


def warn_teachers(db: Database, plan: Plan) -> list[Warning_]:
    """Timetable teachers without a dashboard account, once the school has teacher accounts (a teacher's
    user name is their name in the timetable, protocol.md §5: a misspelt one sees none of their lessons)."""
    users = {r["name"] for r in db.query("SELECT name FROM users WHERE school = ? AND role IN ('teacher', "
                                         "'class_teacher')", (plan.school,))}
    if not users:
        return []
    seen: set[str] = set()
    out = []
    for k, value in plan.parsed.records.items():
        if value[0] not in users and value[0] not in seen:
            seen.add(value[0])
            out.append(Warning_(_where(plan, k, "teacher"), msg("w_teacher_no_account", teacher=value[0])))
    return out


def _where(plan: Plan, key: Any, column: str | None = None) -> Where:
    r = plan.parsed.rows[key]
    return Where(plan.file, r.line, column, r.sheet, r.cell)


# kind -> checks that warn (the import still applies); each returns warnings with line numbers
WARNINGS: dict[str, list[Callable[[Database, Plan], list[Warning_]]]] = {
    "devices": [warn_names],
    "bell": [],
    "timetable": [warn_periods, warn_teachers],
    "substitutions": [warn_periods, warn_names],
    "calendar": [],
    "assets": [],
}


def plan_import(db: Database, kind: str, school: str, path: str | Path, *, replace: bool = False,
                create_school: bool = False, display_name: str | None = None) -> Plan:
    new_school = check_school(db, school, create_school)
    table, warnings = read_file(kind, path, display_name)
    if not table.rows and not replace:
        raise ImportError_(msg("no_rows"), file=table.name)
    parsed: Parsed = PARSERS[kind](table)
    plan = Plan(kind, school, table.name, replace, parsed, new_school=new_school,
                encoding=table.book.encoding if table.book else None, count=len(table.rows))
    diff(db, plan)
    plan.warnings = warnings + [w for check in WARNINGS[kind] for w in check(db, plan)]
    return plan


def apply_plan(db: Database, plan: Plan) -> int:
    with db.transaction():
        ensure_school(db, plan.school)
        write(db, plan)
        invalidate_school(db, plan.school)
    return plan.count


def run_import(db: Database, kind: str, school: str, path: str | Path, *, replace: bool = False,
               create_school: bool = False, display_name: str | None = None) -> int:
    """Import a file: the number of rows it holds. Raises ImportError_ (nothing written) on any error."""
    with db.transaction():  # the comparison and the writing see the same store
        plan = plan_import(db, kind, school, path, replace=replace, create_school=create_school,
                           display_name=display_name)
        return apply_plan(db, plan)


def import_devices(db: Database, school: str, path: str | Path) -> int:
    """The whole device list of a school (replacing it), creating the school if needed: for set-up scripts."""
    return run_import(db, "devices", school, path, replace=True, create_school=True)


def classes_without_device(db: Database, school: str) -> list[str]:
    """Timetable classes with no imported device: their lessons are "no device" (无设备) and left out
    of every rate (collector.lessons.attribution.attribute)."""
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
