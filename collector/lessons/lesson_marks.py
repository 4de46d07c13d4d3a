"""People's marks on single lessons: 外出上课 (the class was taught elsewhere) or 调课 (moved).

A marked lesson is out of the rates' denominator (collector.lessons.lesson_place). Who may mark or reverse
is the dashboard's rule (dashboard.access.Scope); this module validates, stores, writes the audit
log in the same transaction, and marks the day for recomputation (collector.lessons.usage_marks). A mark
in a published week is refused: the published figures stay as they were.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Any, Iterable

from collector.audit import audit
from collector.db import Database
from collector.lessons.attribution import Lesson
from collector.lessons.lesson_place import MARK_KINDS, Mark
from collector.lessons.school_calendar import iso_week
from collector.lessons.usage_marks import mark_dates
from common.errors import BbtError

MAX_REASON = 200


class MarkError(BbtError, ValueError):
    """A mark that cannot be made or reversed; ``status`` is the HTTP status an API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _target(school: str, date: str, klass: str, period: int) -> str:
    return f"{school}/{date}/{klass}/{period}"


def _check_open_week(db: Database, school: str, date: str) -> None:
    week = iso_week(dt.date.fromisoformat(date))
    if db.query("SELECT 1 AS x FROM usage_published WHERE school = ? AND week = ?", (school, week)):
        raise MarkError(f"week {week} is published; its lessons can no longer be marked", 409)


def row_of(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": int(r["id"]), "school": r["school"], "date": r["date"], "class": r["class"],
            "period": int(r["period"]), "teacher": r["teacher"], "kind": r["kind"],
            "kind_zh": MARK_KINDS.get(r["kind"], r["kind"]),
            "reason": r["reason"], "marked_by": r["marked_by"], "marked": r["marked_t"],
            "reversed_by": r["reversed_by"], "reversed": r["reversed_t"], "reverse_reason": r["reverse_reason"],
            "active": r["reversed_t"] is None}


def get(db: Database, mark_id: int) -> dict[str, Any] | None:
    rows = db.query("SELECT * FROM lesson_marks WHERE id = ?", (mark_id,))
    return row_of(rows[0]) if rows else None


def mark_lesson(db: Database, school: str, lesson: Lesson, kind: str, reason: str, by: str,
                now: float | None = None, **detail: Any) -> dict[str, Any]:
    """Mark one lesson 外出上课 (kind "away") or 调课 ("swapped"); ``detail`` goes into the audit entry."""
    if kind not in MARK_KINDS:
        raise MarkError(f"kind must be one of {', '.join(MARK_KINDS)}, not {kind!r}")
    reason = (reason or "").strip()
    if not reason:
        raise MarkError("reason is empty: say where the class was or why the lesson moved")
    if len(reason) > MAX_REASON:
        raise MarkError(f"reason is longer than {MAX_REASON} characters")
    now = time.time() if now is None else now
    key = (school, lesson.date, lesson.klass, lesson.period)
    with db.transaction():
        _check_open_week(db, school, lesson.date)
        if db.query("SELECT 1 AS x FROM lesson_marks WHERE school = ? AND date = ? AND class = ? AND period = ? "
                    "AND reversed_t IS NULL", key):
            raise MarkError(f"{lesson.klass} {lesson.date} period {lesson.period} is already marked", 409)
        db.execute("INSERT INTO lesson_marks (school, date, class, period, teacher, kind, reason, marked_by, "
                   "marked_t) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (*key, lesson.teacher, kind, reason, by, now))
        row = db.query("SELECT * FROM lesson_marks WHERE school = ? AND date = ? AND class = ? AND period = ? "
                       "AND reversed_t IS NULL", key)[0]
        audit(db, "lesson.mark", _target(*key), {"school": school, "mark": int(row["id"]), "kind": kind,
                                                 "reason": reason, "teacher": lesson.teacher,
                                                 "subject": lesson.subject, **detail}, who=by, now=now)
        mark_dates(db, school, [lesson.date])
    return row_of(row)


def reverse_mark(db: Database, school: str, mark_id: int, by: str, reason: str = "",
                 now: float | None = None, **detail: Any) -> dict[str, Any]:
    """Reverse a mark (headteacher or admin): the lesson counts again as measured."""
    now = time.time() if now is None else now
    reason = (reason or "").strip()[:MAX_REASON]
    with db.transaction():
        m = get(db, mark_id)
        if m is None or m["school"] != school:
            raise MarkError(f"no lesson mark {mark_id} in school {school}", 404)
        if not m["active"]:
            raise MarkError(f"lesson mark {mark_id} was already reversed by {m['reversed_by']}", 409)
        _check_open_week(db, school, m["date"])
        db.execute("UPDATE lesson_marks SET reversed_by = ?, reversed_t = ?, reverse_reason = ? WHERE id = ?",
                   (by, now, reason or None, mark_id))
        audit(db, "lesson.mark_reversed", _target(school, m["date"], m["class"], m["period"]),
              {"school": school, "mark": mark_id, "kind": m["kind"], "marked_by": m["marked_by"],
               "reason": reason, **detail}, who=by, now=now)
        mark_dates(db, school, [m["date"]])
    out = get(db, mark_id)
    assert out is not None
    return out


def list_marks(db: Database, school: str, date: str | None = None) -> list[dict[str, Any]]:
    """A school's marks (of one date, or all), newest first, reversed ones included."""
    where, params = "school = ?", [school]
    if date:
        where += " AND date = ?"
        params.append(date)
    return [row_of(r) for r in db.query(f"SELECT * FROM lesson_marks WHERE {where} ORDER BY marked_t DESC, id DESC",
                                        params)]


def active_marks(db: Database, school: str, dates: Iterable[str]) -> dict[tuple[str, str, int], Mark]:
    """{(date, class, period): Mark} of the marks in force on these dates."""
    ds = sorted(set(dates))
    if not ds:
        return {}
    rows = db.query(f"SELECT * FROM lesson_marks WHERE school = ? AND reversed_t IS NULL AND date IN "
                    f"({', '.join('?' for _ in ds)})", [school, *ds])
    return {(r["date"], r["class"], int(r["period"])): Mark(int(r["id"]), r["kind"], r["reason"], r["marked_by"])
            for r in rows}
