"""Marking a lesson 外出上课 / 调课 from the lesson list, reversing a mark, and 课外使用 of a school day
(routes on the usage blueprint). Who may do what: dashboard.access.Scope (may_mark_lesson,
may_reverse_mark), the same checks as the API (dashboard.api_lessons); audited by collector.lessons.lesson_marks.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from collector.lessons import lesson_marks
from collector.lessons.attribution import AWAY_STATUSES
from collector.lessons.lesson_marks import MarkError
from collector.rates import outside_use, usage
from dashboard import get_db
from dashboard.access import DEVICE_ROLES, MARK_ROLES, REVERSE_ROLES, Scope, allow, current_scope
from dashboard.api_lessons import mark, reverse
from dashboard.overview import page_school
from dashboard.usage_pages import bp, today

KIND_LABELS = {"away": _l("外出上课"), "swapped": _l("调课")}  # collector.lessons.lesson_place.MARK_KINDS


def mark_context(scope: Scope, school: str, week: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the lesson list needs to offer marking and reversal (nothing in a published week)."""
    if usage.published(get_db(), school, week) is not None:
        return {"markable": set(), "marks": {}, "may_reverse": False, "mark_kinds": KIND_LABELS}
    active = lesson_marks.active_marks(get_db(), school, {r["date"] for r in rows})
    return {"markable": {(r["date"], r["class"], r["period"]) for r in rows
                         if r["status"] not in AWAY_STATUSES and scope.may_mark_lesson(r["class"], r["teacher"])},
            "marks": {k: m.id for k, m in active.items()}, "may_reverse": scope.may_reverse_mark(),
            "mark_kinds": KIND_LABELS}


def _back() -> Any:
    target = request.form.get("back") or ""
    if not target.startswith("/usage/") or target.startswith("//"):
        target = url_for("usage.teachers")
    return redirect(target)


@bp.post("/lessons/mark")
@allow(*MARK_ROLES)
def mark_lesson() -> Any:
    scope = current_scope()
    f = request.form
    school = scope.school(f.get("school"))
    try:
        day, period = date.fromisoformat(f.get("date", "")), int(f.get("period", ""))
    except ValueError:
        abort(400, description="date must be YYYY-MM-DD and period a number")
    try:
        m = mark(scope, school, day, f.get("class", ""), period, f.get("kind", ""), f.get("reason", ""))
    except MarkError as e:
        flash(_("未能标记：%(e)s", e=str(e)), "error")
        return _back()
    flash(_("已将 %(c)s %(d)s 第 %(p)d 节标记为“%(k)s”，不计入使用率。", c=m["class"], d=m["date"], p=m["period"],
            k=str(KIND_LABELS.get(m["kind"], m["kind"]))), "ok")
    return _back()


@bp.post("/lessons/marks/<int:mark_id>/reverse")
@allow(*REVERSE_ROLES)
def reverse_mark(mark_id: int) -> Any:
    try:
        m = reverse(current_scope(), mark_id, request.form.get("reason", ""))
    except MarkError as e:
        flash(_("未能撤销：%(e)s", e=str(e)), "error")
        return _back()
    flash(_("已撤销 %(c)s %(d)s 第 %(p)d 节的标记，该节课重新计入使用率。", c=m["class"], d=m["date"], p=m["period"]),
          "ok")
    return _back()


@bp.get("/outside")
@allow(*DEVICE_ROLES, "class_teacher")
def outside() -> Any:
    """课外使用 of a school day: each PC's in-use time outside its class's lessons."""
    scope = current_scope()
    school = page_school(scope)
    raw = request.args.get("date")
    try:
        day = date.fromisoformat(raw) if raw else today(school)
    except ValueError:
        abort(400, description=f"date {raw!r} is not YYYY-MM-DD")
    rows = [r for r in outside_use.day_rows(get_db(), school, day) if scope.sees_device_of_class(r["class"])]
    return render_template("usage/outside.html", school=school, day=day, rows=rows)
