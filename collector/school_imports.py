"""Importers for the school model (CONTRACT §2): bell, timetable, substitutions, calendar.

Each reads the whole file and validates every row first (an error names file, line and column);
then, in one transaction, the school's previous data of that kind is replaced. Computed usage of
days not yet published is marked for recomputation; published weeks keep their figures.

Calendar files also carry the terms: rows of kind ``term_start`` and ``term_end`` (optional
column ``term`` with its name, e.g. "2026秋季学期"); each term_start pairs with the next term_end.
"""
from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Callable

from collector.db import Database
from collector.registry import ensure_school
from collector.tables import Row, col_error, read_table
from collector.usage_marks import invalidate_school

HHMM = re.compile(r"^(\d{1,2}):(\d{2})(:\d{2})?$")
WEEKS = {"all": "all", "": "all", "每周": "all", "全": "all", "odd": "odd", "单": "odd", "单周": "odd",
         "even": "even", "双": "even", "双周": "even"}
CAL_KINDS = {"holiday": "holiday", "放假": "holiday", "假期": "holiday", "workday": "workday", "上课": "workday",
             "调休": "workday", "补课": "workday", "exam": "exam", "考试": "exam", "term_start": "term_start",
             "开学": "term_start", "term_end": "term_end", "学期结束": "term_end"}


def _int(path: Any, r: Row, col: str, lo: int, hi: int) -> int:
    v = r.values.get(col, "")
    try:
        n = int(v)
    except ValueError:
        raise col_error(path, r, col, f"{v!r} is not a whole number") from None
    if not lo <= n <= hi:
        raise col_error(path, r, col, f"{n} is not between {lo} and {hi}")
    return n


def _minutes(path: Any, r: Row, col: str) -> int:
    v = r.values.get(col, "")
    m = HHMM.match(v)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise col_error(path, r, col, f"{v!r} is not a time HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def _date(path: Any, r: Row, col: str) -> str:
    v = r.values.get(col, "")
    try:
        return date.fromisoformat(v[:10] if len(v) > 10 and v[10] in " T" else v).isoformat()
    except ValueError:
        raise col_error(path, r, col, f"{v!r} is not a date YYYY-MM-DD") from None


def _text(path: Any, r: Row, col: str) -> str:
    v = r.values.get(col, "")
    if not v:
        raise col_error(path, r, col, "is empty")
    return v


def _replace(db: Database, school: str, table: str, sql: str, rows: list[tuple[Any, ...]]) -> int:
    with db.transaction():
        ensure_school(db, school)
        db.execute(f"DELETE FROM {table} WHERE school = ?", (school,))
        if rows:
            db.executemany(sql, [(school, *r) for r in rows])
        invalidate_school(db, school)
    return len(rows)


def import_bell(db: Database, school: str, path: str | Path) -> int:
    rows = read_table(path, ("period", "start", "end"), ("schedule", "valid_from"))
    groups: dict[str, str] = {}  # valid_from -> schedule name
    seen: dict[tuple[str, int], int] = {}
    records = []
    for r in rows:
        period = _int(path, r, "period", 1, 30)
        a, b = _minutes(path, r, "start"), _minutes(path, r, "end")
        if b <= a:
            raise col_error(path, r, "end", f"{r.values['end']} is not after start {r.values['start']}")
        schedule = r.values.get("schedule", "") or "default"
        vf = _date(path, r, "valid_from") if r.values.get("valid_from") else "0001-01-01"
        if groups.setdefault(vf, schedule) != schedule:
            raise col_error(path, r, "valid_from", f"{vf} is already the start of schedule {groups[vf]!r}")
        if (vf, period) in seen:
            raise col_error(path, r, "period", f"period {period} repeats line {seen[(vf, period)]}")
        seen[(vf, period)] = r.line
        records.append((vf, schedule, period, a, b))
    if len({s for s in groups.values()}) > 1 and "0001-01-01" in groups:
        raise col_error(path, rows[0], "valid_from", "is needed on every row when the file has several schedules")
    _check_overlaps(path, rows, records)
    return _replace(db, school, "bell_periods", "INSERT INTO bell_periods (school, valid_from, schedule, period, "
                    "start_min, end_min) VALUES (?, ?, ?, ?, ?, ?)", records)


def _check_overlaps(path: Any, rows: list[Row], records: list[tuple[str, str, int, int, int]]) -> None:
    by_vf: dict[str, list[tuple[int, int, int, Row]]] = {}
    for r, (vf, _s, p, a, b) in zip(rows, records, strict=True):
        by_vf.setdefault(vf, []).append((a, b, p, r))
    for items in by_vf.values():
        items.sort(key=lambda x: x[0])
        for (_a1, b1, p1, _), (a2, _b2, p2, r2) in zip(items, items[1:], strict=False):
            if a2 < b1:
                raise col_error(path, r2, "start", f"period {p2} starts before period {p1} ends")


def import_timetable(db: Database, school: str, path: str | Path) -> int:
    rows = read_table(path, ("class", "weekday", "period", "teacher", "subject"), ("weeks", "room"))
    seen: dict[tuple[str, int, int], dict[str, int]] = {}
    records = []
    for r in rows:
        klass = _text(path, r, "class")
        wd = _int(path, r, "weekday", 1, 7)
        period = _int(path, r, "period", 1, 30)
        teacher, subject = _text(path, r, "teacher"), _text(path, r, "subject")
        weeks = WEEKS.get(r.values.get("weeks", "").lower())
        if weeks is None:
            raise col_error(path, r, "weeks", f"{r.values['weeks']!r} is not all, odd or even")
        slot = seen.setdefault((klass, wd, period), {})
        clash = [w for w in slot if w == weeks or "all" in (w, weeks)]
        if clash:
            raise col_error(path, r, "period", f"{klass} weekday {wd} period {period} is already on line "
                            f"{slot[clash[0]]}")
        slot[weeks] = r.line
        records.append((klass, wd, period, weeks, teacher, subject, r.values.get("room") or None))
    return _replace(db, school, "timetable", "INSERT INTO timetable (school, class, weekday, period, weeks, teacher, "
                    "subject, room) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", records)


def import_substitutions(db: Database, school: str, path: str | Path) -> int:
    rows = read_table(path, ("date", "class", "period", "teacher"), ("subject",))
    seen: dict[tuple[str, str, int], int] = {}
    records = []
    for r in rows:
        d = _date(path, r, "date")
        klass = _text(path, r, "class")
        period = _int(path, r, "period", 1, 30)
        key = (d, klass, period)
        if key in seen:
            raise col_error(path, r, "period", f"{klass} {d} period {period} repeats line {seen[key]}")
        seen[key] = r.line
        records.append((d, klass, period, r.values.get("teacher", ""), r.values.get("subject") or None))
    return _replace(db, school, "substitutions", "INSERT INTO substitutions (school, date, class, period, teacher, "
                    "subject) VALUES (?, ?, ?, ?, ?, ?)", records)


def import_calendar(db: Database, school: str, path: str | Path) -> int:
    rows = read_table(path, ("date", "kind"), ("follows_weekday", "term", "note"))
    seen: dict[str, int] = {}
    days: list[tuple[str, str, int | None]] = []
    marks: list[tuple[str, str, Row]] = []
    for r in rows:
        d = _date(path, r, "date")
        kind = CAL_KINDS.get(r.values.get("kind", "").strip().lower())
        if kind is None:
            raise col_error(path, r, "kind", f"{r.values.get('kind')!r} is not one of holiday, workday, exam, "
                            "term_start, term_end")
        if kind in ("term_start", "term_end"):
            marks.append((d, kind, r))
            continue
        if d in seen:
            raise col_error(path, r, "date", f"{d} repeats line {seen[d]}")
        seen[d] = r.line
        follows = None
        if r.values.get("follows_weekday"):
            if kind != "workday":
                raise col_error(path, r, "follows_weekday", "only a workday follows a weekday's timetable")
            follows = _int(path, r, "follows_weekday", 1, 7)
        elif kind == "workday" and date.fromisoformat(d).isoweekday() >= 6:
            raise col_error(path, r, "follows_weekday", "a weekend workday must name the weekday (1-5) "
                            "whose timetable it follows")
        days.append((d, kind, follows))
    terms = _terms(path, marks)
    with db.transaction():
        ensure_school(db, school)
        db.execute("DELETE FROM calendar_days WHERE school = ?", (school,))
        db.execute("DELETE FROM terms WHERE school = ?", (school,))
        db.executemany("INSERT INTO calendar_days (school, date, kind, follows_weekday) VALUES (?, ?, ?, ?)",
                       [(school, *d) for d in days])
        db.executemany("INSERT INTO terms (school, name, start_date, end_date) VALUES (?, ?, ?, ?)",
                       [(school, *t) for t in terms])
        invalidate_school(db, school)
    return len(days) + len(marks)


def _terms(path: Any, marks: list[tuple[str, str, Row]]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    start: tuple[str, Row] | None = None
    for d, kind, r in sorted(marks, key=lambda m: (m[0], m[1] == "term_start")):
        if kind == "term_start":
            if start is not None:
                raise col_error(path, r, "kind", f"term_start {d}: the term starting {start[0]} has no term_end")
            start = (d, r)
        else:
            if start is None:
                raise col_error(path, r, "kind", f"term_end {d} has no term_start before it")
            name = start[1].values.get("term") or r.values.get("term") or f"{start[0]}至{d}"
            out.append((name, start[0], d))
            start = None
    if start is not None:
        raise col_error(path, start[1], "kind", f"the term starting {start[0]} has no term_end")
    return out


SCHOOL_IMPORTERS: dict[str, Callable[[Database, str, Any], int]] = {
    "bell": import_bell,
    "timetable": import_timetable,
    "substitutions": import_substitutions,
    "calendar": import_calendar,
}
