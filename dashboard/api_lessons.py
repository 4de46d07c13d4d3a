"""Where a lesson is taught and use outside lessons, on the api blueprint (issue 16):

* ``GET  /api/v1/lesson-marks?school=S[&date=D]``: the 外出上课 / 调课 marks the caller may see;
* ``POST /api/v1/lesson-marks`` ``{"school", "date", "class", "period", "kind": "away"|"swapped", "reason"}``:
  mark one lesson (a teacher their own lessons, a class teacher their class's, a headteacher or admin
  any: dashboard.access.Scope.may_mark_lesson); 201 with the mark;
* ``POST /api/v1/lesson-marks/{id}/reverse`` ``{"reason"?}``: a headteacher or admin reverses a mark;
* ``GET  /api/v1/usage/outside?school=S&date=D``: each device's use outside lessons (课外使用).

Marks and reversals are audited with their author (collector.lessons.lesson_marks, same transaction).
"""
from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any

from flask import abort, jsonify, request

from collector.devices.registry import school_tz
from collector.lessons import lesson_marks
from collector.lessons.lesson_marks import MarkError
from collector.rates import outside_use, usage
from dashboard import get_db
from dashboard.access import DEVICE_ROLES, MARK_ROLES, REVERSE_ROLES, Scope, allow, current_scope
from dashboard.api import bp, resolve_school
from dashboard.auth import client_ip


def _day(school: str, raw: str | None) -> date:
    try:
        return date.fromisoformat(raw) if raw else datetime.fromtimestamp(time.time(),
                                                                          school_tz(get_db(), school)).date()
    except ValueError:
        abort(400, description=f"date {raw!r} is not YYYY-MM-DD")


def _error(e: MarkError) -> Any:
    names = {400: "bad_request", 403: "forbidden", 404: "not_found", 409: "conflict"}
    return jsonify(error=names.get(e.status, "error"), message=str(e)), e.status


def mark(s: Scope, school: str, day: date, klass: str, period: int, kind: str, reason: str) -> dict[str, Any]:
    """Mark one lesson for the user of ``s`` (pages and API): 404 without such a lesson, 403 when
    the user may not mark it; raises MarkError for a bad or refused mark."""
    db = get_db()
    lesson = usage.find_lesson(db, school, day, klass, period)
    if lesson is None:
        abort(404, description=f"no lesson of {klass} on {day} period {period}")
    if not s.may_mark_lesson(lesson.klass, lesson.teacher):
        abort(403)
    return lesson_marks.mark_lesson(db, school, lesson, kind, reason, s.user.name, ip=client_ip(),
                                    role=s.user.role)


def reverse(s: Scope, mark_id: int, reason: str) -> dict[str, Any]:
    """Reverse a mark for a headteacher or admin of its school (403 otherwise, 404 without it)."""
    m = lesson_marks.get(get_db(), mark_id)
    if m is None:
        abort(404)
    s.school(m["school"])
    if not s.may_reverse_mark():
        abort(403)
    return lesson_marks.reverse_mark(get_db(), m["school"], mark_id, s.user.name, reason, ip=client_ip(),
                                     role=s.user.role)


@bp.get("/lesson-marks")
@allow(*MARK_ROLES)
def marks_list() -> Any:
    s = current_scope()
    school = resolve_school(s)
    day = request.args.get("date")
    if day is not None:
        _day(school, day)
    return jsonify([m for m in lesson_marks.list_marks(get_db(), school, day)
                    if s.sees_lesson(m["class"], m["teacher"])])


@bp.post("/lesson-marks")
@allow(*MARK_ROLES)
def marks_create() -> Any:
    s = current_scope()
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    school = s.school(str(body.get("school") or "") or None)
    missing = [k for k in ("date", "class", "period", "kind", "reason") if body.get(k) in (None, "")]
    if missing:
        abort(400, description=f"missing: {', '.join(missing)}")
    try:
        period = int(body["period"])
    except (TypeError, ValueError):
        abort(400, description=f"period {body['period']!r} is not a whole number")
    try:
        m = mark(s, school, _day(school, str(body["date"])), str(body["class"]), period, str(body["kind"]),
                 str(body["reason"]))
    except MarkError as e:
        return _error(e)
    return jsonify(m), 201


@bp.post("/lesson-marks/<int:mark_id>/reverse")
@allow(*REVERSE_ROLES)
def marks_reverse(mark_id: int) -> Any:
    body = request.get_json(silent=True) or {}
    try:
        reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
        return jsonify(reverse(current_scope(), mark_id, reason))
    except MarkError as e:
        return _error(e)


@bp.get("/usage/outside")
@allow(*DEVICE_ROLES, "class_teacher")
def usage_outside() -> Any:
    """课外使用: each device's in-use time outside its class's lessons on a school day."""
    s = current_scope()
    school = resolve_school(s)
    day = _day(school, request.args.get("date"))
    return jsonify([r for r in outside_use.day_rows(get_db(), school, day) if s.sees_device_of_class(r["class"])])
