"""The overview: every device by building and floor, today's usage so far, open faults. Refreshes itself."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, render_template, request

from collector.devices import registry
from collector.rates import queries
from dashboard import cache, devstate, get_db
from dashboard.access import ANY_USER, Scope, allow, current_scope

bp = Blueprint("overview", __name__)
USAGE_TTL_S = 10.0  # the usage tiles may be this old (the page refreshes every 10 s)
SUMMARY_TTL_S = 2.0  # the whole overview may be this old


def schools_known() -> list[str]:
    return registry.schools(get_db())


def page_school(scope: Scope) -> str:
    """The school a page shows: asked for (checked), the user's own, the first known; "" for an empty store."""
    asked = request.args.get("school") or request.form.get("school")
    known = schools_known()
    if not asked and not scope.user.school and not known:
        return ""
    return scope.school(asked, known)


def visible_devices(scope: Scope, school: str) -> list[dict[str, Any]]:
    devices = registry.list_devices(get_db(), school)
    return devstate.with_states([d for d in devices if scope.sees_device_of_class(d["class"])])


def summary(scope: Scope, school: str) -> dict[str, Any]:
    """Everything the overview shows (the page renders it; the page's script polls it as JSON)."""
    db = get_db()
    devices = visible_devices(scope, school) if scope.user.role != "teacher" else []
    classes = {d["class"] for d in devices}
    faults = queries.open_faults(db, school)
    faults = [f for f in faults if scope.user.role in ("admin", "headteacher", "maintainer") or f["class"] in classes]
    tz = registry.school_tz(db, school)
    for f in faults:
        f["opened"] = registry.iso(f["opened_t"], tz)
    return {
        "usage": cache.cached(("usage_summary", db.url, school, scope.user.role, scope.user.name, scope.user.klass),
                              USAGE_TTL_S, lambda: usage_summary(scope, school, tz)),
        "school": school, "generated": registry.iso(time.time(), tz),
        "devices": [{k: d[k] for k in ("device", "class", "room", "building", "floor", "state", "last_seen",
                                       "open_faults")} for d in devices],
        "counts": devstate.counts(devices), "total": len(devices),
        "floor_chart": devstate.floor_chart(devices),
        "faults": faults[:20], "open_faults": len(faults), "open_alerts": open_alerts(scope, school, classes),
    }


def open_alerts(scope: Scope, school: str, classes: set[str | None]) -> int:
    """Alerts not yet acknowledged, of what the user may see (alerts.store)."""
    if scope.user.role == "teacher":
        return 0
    from alerts import store

    rows = store.list_alerts(get_db(), school, "firing")
    if scope.user.role in ("admin", "headteacher", "maintainer"):
        return len(rows)
    return sum(1 for a in rows if a["class"] in classes)


def today_lessons(school: str, day: Any) -> list[dict[str, Any]]:
    """The day's lessons from the usage rollup (collector.rates.usage.rollup_rows: current, without writing):
    what the tiles count (usage.day_lessons also annotates each lesson's certainty, too slow here)."""
    from collector.rates import usage

    return usage.rollup_rows(get_db(), school, day, day)


def usage_summary(scope: Scope, school: str, tz: Any) -> dict[str, Any] | None:
    """Today's lessons used so far and this week's rate, over what the user may see (None for maintainers)."""
    from collector.lessons.school_calendar import iso_week
    from collector.rates import usage

    user = scope.user
    if user.role == "maintainer":
        return None
    db = get_db()
    today = datetime.fromtimestamp(time.time(), tz).date()
    lessons = [r for r in today_lessons(school, today) if scope.sees_lesson(r["class"], r["teacher"])]
    done = [r for r in lessons if r["status"] != "pending" and r["counted"]]
    by = "teacher" if user.role == "teacher" else "class"
    rows = usage.week_rates(db, school, iso_week(today), by)
    rows = [r for r in rows if (scope.sees_teacher(r["teacher"]) if by == "teacher" else scope.sees_class(r["class"]))]
    threshold = usage.threshold(db, school)
    week = usage.total(rows, by, threshold)  # the one owner of the rate and below_threshold
    scheduled = week.scheduled
    return {"today_lessons": len(lessons), "today_done": len(done), "today_used": sum(1 for r in done if r["used"]),
            "week": iso_week(today), "week_rate": week.rate if scheduled else None, "threshold": threshold,
            "week_below": bool(scheduled) and week.below_threshold}


def cached_summary(scope: Scope, school: str) -> dict[str, Any]:
    """summary() shared for SUMMARY_TTL_S by users who see the same (device states change at most every
    few seconds; agents send a heartbeat a minute)."""
    u = scope.user
    who = u.name if u.role == "teacher" else u.klass if u.role == "class_teacher" else None
    return dict(cache.cached(("overview", get_db().url, school, u.role, who), SUMMARY_TTL_S,
                             lambda: summary(scope, school)))


@bp.get("/")
@allow(*ANY_USER)
def index() -> Any:
    scope = current_scope()
    school = page_school(scope)
    data = cached_summary(scope, school)
    return render_template("overview/index.html", data=data, floors=devstate.by_floor(data["devices"]),
                           states=devstate.STATES)


@bp.get("/overview.json")
@allow(*ANY_USER)
def data() -> Any:
    scope = current_scope()
    return jsonify(cached_summary(scope, page_school(scope)))
