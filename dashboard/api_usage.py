"""Usage endpoints of CONTRACT §4 on the api blueprint: usage/teachers, usage/classes, lessons,
plus usage/report (the weekly report as JSON, or ?format=html|xlsx|csv) and usage/trend.

Who sees what: admin and headteacher the whole school; a class teacher (班主任) their class
(its row, its lessons, and the teachers' rates over its lessons); a teacher their own row and
lessons; anyone else 403.
"""
from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from typing import Any

from flask import Response, abort, jsonify, request

from collector import usage, usage_export
from collector.registry import school_tz
from collector.school_calendar import iso_week, week_days
from collector.usage_report import weekly_report
from dashboard import get_db
from dashboard.api import bp, resolve_school
from dashboard.auth import current_user, login_required
from dashboard.users import User

SCHOOL_WIDE = ("admin", "headteacher")


def _user() -> User:
    user = current_user()
    assert user is not None
    return user


def _week(school: str) -> str:
    week = request.args.get("week")
    if not week:
        return iso_week(datetime.fromtimestamp(time.time(), school_tz(get_db(), school)).date())
    try:
        week_days(week)
    except ValueError as e:
        abort(400, description=str(e))
    return week


def _rows(school: str, week: str, by: str, user: User) -> list[dict[str, Any]]:
    db = get_db()
    if user.role in SCHOOL_WIDE:
        return usage.week_rates(db, school, week, by)
    if user.role == "class_teacher" and user.klass:
        if by == "class":
            return [r for r in usage.week_rates(db, school, week, "class") if r["class"] == user.klass]
        frozen = usage.published(db, school, week)
        if frozen is not None:  # rebuild from the frozen lessons of the class
            return _rates_from_lessons([r for r in frozen["lessons"] if r["class"] == user.klass], frozen, by)
        days = week_days(week)
        return usage.range_rates(db, school, days[0], days[-1], by, classes=[user.klass])
    if user.role == "teacher" and by == "teacher":
        return [r for r in usage.week_rates(db, school, week, "teacher") if r["teacher"] == user.name]
    abort(403)


def _rates_from_lessons(lessons: list[dict[str, Any]], frozen: dict[str, Any], by: str) -> list[dict[str, Any]]:
    from collector.attribution import make_rate

    acc: dict[str, list[int]] = {}
    for r in lessons:
        if r["status"] == "pending":
            continue
        a = acc.setdefault(r[by], [0, 0, 0])
        a[0] += int(r["counted"])
        a[1] += int(r["used"])
        a[2] += int(not r["counted"])
    return [usage.rate_dict(make_rate(k, s, u, float(frozen["threshold"]), x), by)
            for k, (s, u, x) in sorted(acc.items()) if s]


@bp.get("/usage/teachers")
@login_required
def usage_teachers() -> Any:
    school = resolve_school()
    return jsonify(_rows(school, _week(school), "teacher", _user()))


@bp.get("/usage/classes")
@login_required
def usage_classes() -> Any:
    school = resolve_school()
    return jsonify(_rows(school, _week(school), "class", _user()))


@bp.get("/lessons")
@login_required
def lessons() -> Any:
    school = resolve_school()
    user = _user()
    raw = request.args.get("date")
    try:
        day = date.fromisoformat(raw) if raw else datetime.fromtimestamp(
            time.time(), school_tz(get_db(), school)).date()
    except ValueError:
        abort(400, description=f"date {raw!r} is not YYYY-MM-DD")
    rows = usage.day_lessons(get_db(), school, day)
    if user.role == "class_teacher":
        rows = [r for r in rows if r["class"] == user.klass]
    elif user.role == "teacher":
        rows = [r for r in rows if r["teacher"] == user.name]
    elif user.role not in SCHOOL_WIDE:
        abort(403)
    return jsonify(rows)


@bp.get("/usage/report")
@login_required
def usage_report() -> Any:
    """The weekly report (school-wide roles only): JSON, or format=html (printable) / xlsx / csv."""
    school = resolve_school()
    if _user().role not in SCHOOL_WIDE:
        abort(403)
    week = _week(school)
    rep = weekly_report(get_db(), school, week)
    fmt = request.args.get("format", "json")
    if fmt == "html":
        return Response(usage_export.to_html(rep), mimetype="text/html")
    if fmt == "csv":
        return Response(usage_export.to_csv(rep), mimetype="text/csv")
    if fmt == "xlsx":
        return Response(usage_export.to_xlsx(rep),
                        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition": f"attachment; filename=usage-{school}-{week}.xlsx"})
    if fmt != "json":
        abort(400, description="format must be json, html, csv or xlsx")
    return jsonify(rep)


@bp.get("/usage/trend")
@login_required
def usage_trend() -> Any:
    """Weekly rates over the last N weeks (weeks=8 by default): {"weeks": [...], "rows": {key: [rate|null]}}."""
    school = resolve_school()
    user = _user()
    by = request.args.get("by", "teacher")
    if by not in ("teacher", "class"):
        abort(400, description="by must be teacher or class")
    try:
        n = max(1, min(30, int(request.args.get("weeks", "8"))))
    except ValueError:
        abort(400, description="weeks must be a number")
    last = week_days(_week(school))[0]
    weeks = [iso_week(last - timedelta(days=7 * i)) for i in range(n - 1, -1, -1)]
    rows = {w: _rows(school, w, by, user) for w in weeks}
    out: dict[str, list[float | None]] = {}
    for i, w in enumerate(weeks):
        for r in rows[w]:
            out.setdefault(r[by], [None] * len(weeks))[i] = r["rate"]
    return jsonify({"weeks": weeks, "rows": out})
