"""公布 the week from the dashboard (一周一汇总，一周一公布): the week's state, what awaits review first
(the fault register entries pending — reviewed on their ticket page), then a 公布 button with a
confirmation step. Publishing goes through collector.rates.usage_report.publish_week, as the CLI does, and
is audited; after publication the page lists the corrections that reviews made since.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from alerts.rules import fault_title
from collector.devices.registry import school_tz
from collector.lessons.school_calendar import week_days
from collector.rates import queries, usage
from collector.rates.usage_report import pending_entries, publish_week, review_warning
from dashboard import audit, get_db
from dashboard.access import allow, current_scope
from dashboard.auth import client_ip
from dashboard.overview import page_school
from dashboard.usage_pages import bp, chosen_week, correction_rows, shift, today

PUBLISH_ROLES = ("admin", "headteacher")


def pending_list(school: str, week: str) -> list[dict[str, Any]]:
    """The register entries awaiting review that cover counted lessons of the week, with their ticket."""
    db = get_db()
    ids = pending_entries(db, school, week)
    if not ids:
        return []
    tz = school_tz(db, school)
    rows = queries.faults_with_tickets(db, ids)
    for r in rows:
        r["title"] = fault_title(r["code"])
        r["opened"] = _local(r["opened_t"], tz)
        r["cleared"] = _local(r["cleared_t"], tz)
    return rows


def _local(t: float | None, tz: Any) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%m-%d %H:%M") if t is not None else ""


def week_state(school: str, week: str) -> dict[str, Any]:
    """Published (when, by whom, its corrections) or not, and the week's figures as they stand."""
    db = get_db()
    frozen = usage.published(db, school, week)
    days = week_days(week)
    tz = school_tz(db, school)
    if frozen is not None:
        teachers, classes = frozen["teachers"], frozen["classes"]
    else:
        teachers, classes = usage.week_rates(db, school, week, "teacher"), usage.week_rates(db, school, week, "class")
    return {
        "published": frozen is not None,
        "when": datetime.fromtimestamp(frozen["published"], tz).strftime("%Y-%m-%d %H:%M") if frozen else None,
        "by": (frozen or {}).get("published_by"),
        "corrections": correction_rows(school, frozen or {}),
        "teachers": len(teachers), "teachers_below": sum(1 for r in teachers if r["below_threshold"]),
        "classes": len(classes), "classes_below": sum(1 for r in classes if r["below_threshold"]),
        "awaiting": sum(int(r.get("awaiting_review") or 0) for r in classes),
        "started": days[0] <= today(school), "over": days[-1] < today(school),
    }


@bp.route("/publish", methods=["GET", "POST"])
@allow(*PUBLISH_ROLES)
def publish() -> Any:
    """GET: the week's state; POST action=confirm: the confirmation; POST action=publish: publish it."""
    scope = current_scope()
    school = page_school(scope)
    if not school:
        abort(400, description="missing query parameter: school")
    week = chosen_week(school)
    action = request.form.get("action") if request.method == "POST" else None
    if action not in (None, "confirm", "publish"):
        abort(400, description="action must be confirm or publish")
    state = week_state(school, week)
    if action and not state["started"]:
        abort(400, description=f"{week} has not started yet")
    if action == "publish" and not state["published"]:
        db = get_db()
        rep = publish_week(db, school, week, scope.user.name)
        audit.record(db, scope.user.name, "usage.publish", school, week, client_ip(),
                     teachers=len(rep["teachers"]), below=sum(1 for r in rep["teachers"] if r["below_threshold"]),
                     awaiting_review=int(rep.get("awaiting_review") or 0))
        flash(_("已公布 %(w)s。", w=week), "ok")
        if review_warning(rep):
            flash(_("%(n)d 节课所在时段有待核实的故障登记（%(m)d 条），按实际测量计入；核实后将以更正形式记录。",
                    n=int(rep.get("awaiting_review") or 0), m=int(rep.get("pending_reviews") or 0)), "warning")
        return redirect(url_for("usage.publish", school=school, week=week))
    return render_template("usage/publish.html", school=school, week=week, state=state,
                           pending=pending_list(school, week), confirming=action == "confirm",
                           prev=shift(week, -1), next=shift(week, 1))
