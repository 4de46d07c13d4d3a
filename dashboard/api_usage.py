"""Usage endpoints of protocol.md §4 on the api blueprint: usage/teachers, usage/classes, lessons,
plus usage/report (the weekly report as JSON, or ?format=html|xlsx|csv; ``month=YYYY-MM`` or
``from=D&to=D`` for a month or any dates, ``lang=en`` for English CSV headers) and usage/trend.
usage/teachers and usage/classes also take ``date=D`` (that day's rates), ``term=D`` (the term
containing D, up to today) or ``from=D&to=D`` instead of ``week``; those are computed live (not
from a frozen week).

Who sees what: admin and headteacher the whole school; a class teacher (班主任) their class
(its row, its lessons, and the rates of the teachers over its lessons — the 班主任 urges the
class's teachers) and their own lessons; a teacher their own row and lessons; anyone else 403
(dashboard.access: every view declares its roles).
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Response, abort, jsonify, request

from collector.lessons.school_calendar import iso_week, week_days
from collector.rates import usage, usage_export
from collector.rates.usage_report import parse_month, parse_range, range_report, weekly_report
from dashboard import get_db
from dashboard.access import SCHOOL_WIDE, allow, current_scope, scoped_rates
from dashboard.api import bp, resolve_school
from dashboard.users import User

RATE_ROLES = ("admin", "headteacher", "class_teacher", "teacher", "bureau")


def _user() -> User:
    return current_scope().user


def _school() -> str:
    return resolve_school(current_scope())


def _week(school: str) -> str:
    week = request.args.get("week")
    if not week:
        return iso_week(usage.today_at(get_db(), school))
    try:
        week_days(week)
    except ValueError as e:
        abort(400, description=str(e))
    return week


def request_span(school: str) -> tuple[date, date] | None:
    """?date=D (that day), ?term=D (the term containing D, up to today) or ?from=D&to=D instead of ?week=."""
    if request.args.get("from") or request.args.get("to"):
        try:
            return parse_range(request.args.get("from", ""), request.args.get("to", ""))
        except ValueError as e:
            abort(400, description=str(e))
    for key in ("date", "term"):
        raw = request.args.get(key)
        if raw is None:
            continue
        try:
            d = date.fromisoformat(raw)
        except ValueError:
            abort(400, description=f"{key} {raw!r} is not YYYY-MM-DD")
        if key == "date":
            return d, d
        _name, start, end = usage.term_span(get_db(), school, d)
        return start, end
    return None


def rate_rows(school: str, week: str, by: str, user: User) -> list[dict[str, Any]]:
    """The rates the request asks for (the week, or the span of :func:`request_span`) that ``user`` sees
    (:func:`dashboard.access.scoped_rates`)."""
    db = get_db()
    span = request_span(school)
    if span is not None:
        start, end = span
        return scoped_rates(user, by, lambda: usage.range_rates(db, school, start, end, by),
                            lambda klass: usage.range_rates(db, school, start, end, by, classes=[klass]))

    return scoped_rates(user, by, lambda: usage.week_rates(db, school, week, by),
                        lambda klass: usage.class_week_rates(db, school, week, by, klass))


@bp.get("/usage/teachers")
@allow(*RATE_ROLES)
def usage_teachers() -> Any:
    school = _school()
    return jsonify(rate_rows(school, _week(school), "teacher", _user()))


@bp.get("/usage/classes")
@allow(*SCHOOL_WIDE, "class_teacher")
def usage_classes() -> Any:
    school = _school()
    return jsonify(rate_rows(school, _week(school), "class", _user()))


@bp.get("/lessons")
@allow(*RATE_ROLES)
def lessons() -> Any:
    school = _school()
    raw = request.args.get("date")
    try:
        day = date.fromisoformat(raw) if raw else usage.today_at(get_db(), school)
    except ValueError:
        abort(400, description=f"date {raw!r} is not YYYY-MM-DD")
    s = current_scope()
    return jsonify([r for r in usage.day_lessons(get_db(), school, day) if s.sees_lesson(r["class"], r["teacher"])])


def report_for_request(school: str) -> dict[str, Any]:
    """The report the request asks for: ?month=YYYY-MM, ?from=D&to=D, else the week (?week=)."""
    month, lo, hi = request.args.get("month"), request.args.get("from"), request.args.get("to")
    try:
        if month:
            start, end = parse_month(month)
            return range_report(get_db(), school, start, end, month=month)
        if lo or hi:
            start, end = parse_range(lo or "", hi or "")
            return range_report(get_db(), school, start, end)
    except ValueError as e:
        abort(400, description=str(e))
    return weekly_report(get_db(), school, _week(school))


def report_name(rep: dict[str, Any], ext: str) -> str:
    """The download's file name: 班班通使用情况-SCHOOL-2026-W48.xlsx (or -2026-11, -FROM_TO)."""
    label = rep.get("week") or rep.get("month") or f"{rep['start']}_{rep['end']}"
    return f"班班通使用情况-{rep['school']}-{label}.{ext}"


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def report_file(rep: dict[str, Any], fmt: str) -> Any:
    """The report as a download: xlsx, or csv (UTF-8 with BOM; ?lang=en for English headers)."""
    from flask import send_file

    if fmt == "xlsx":
        data, mime = usage_export.to_xlsx(rep), XLSX_TYPE
    else:
        lang = request.args.get("lang", "zh")
        if lang not in usage_export.LANGS:
            abort(400, description="lang must be zh or en")
        data, mime = usage_export.to_csv(rep, lang).encode("utf-8"), "text/csv; charset=utf-8"
    import io

    return send_file(io.BytesIO(data), mimetype=mime, as_attachment=True, download_name=report_name(rep, fmt))


@bp.get("/usage/report")
@allow(*SCHOOL_WIDE)
def usage_report() -> Any:
    """The report (school-wide roles only) of a week, a month or any dates: JSON, or format=html
    (printable) / xlsx / csv."""
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "html", "csv", "xlsx"):
        abort(400, description="format must be json, html, csv or xlsx")
    rep = report_for_request(_school())
    if fmt == "html":
        return Response(usage_export.to_html(rep), mimetype="text/html")
    if fmt in ("csv", "xlsx"):
        return report_file(rep, fmt)
    return jsonify(rep)


@bp.get("/usage/trend")
@allow(*RATE_ROLES)
def usage_trend() -> Any:
    """Weekly rates over the last N weeks (weeks=8 by default): {"weeks": [...], "rows": {key: [rate|null]}}."""
    school = _school()
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
    rows = {w: rate_rows(school, w, by, user) for w in weeks}
    return jsonify({"weeks": weeks, "rows": usage.trend_of(weeks, rows, by)})
