"""The bureau's (区县教育局) cross-school comparison: a page with a chart and a JSON endpoint.

A ``bureau`` user sees every school; an admin without a school too; an admin of one school
sees only that school's row.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from collector.devices.registry import DEFAULT_TZ
from collector.lessons.school_calendar import iso_week
from collector.rates import district
from dashboard import get_db
from dashboard.access import allow
from dashboard.auth import current_user

bp = Blueprint("district", __name__)
ROLES = ("bureau", "admin")


def _week() -> str:
    week = request.args.get("week")
    if not week:
        from zoneinfo import ZoneInfo

        return iso_week(datetime.fromtimestamp(time.time(), ZoneInfo(DEFAULT_TZ)).date())
    return week


def _rows(week: str) -> list[dict[str, Any]]:
    user = current_user()
    assert user is not None
    db = get_db()
    schools = None if user.school is None else [user.school]
    try:
        return district.compare_schools(db, week, schools)
    except ValueError as e:
        abort(400, description=str(e))


@bp.get("/api/v1/district/schools")
@allow(*ROLES)
def api_schools() -> Any:
    """[{school, name, devices, online, scheduled, used, rate, classes_below, teachers_below, faults_open,
    faults_week}] for ?week=2026-W48 (default: this week)."""
    return jsonify(_rows(_week()))


@bp.get("/district")
@allow(*ROLES)
def index() -> Any:
    week = _week()
    rows = _rows(week)
    chart = {"schools": [r["name"] for r in rows],
             "rates": [None if r["rate"] is None else round(r["rate"] * 100, 1) for r in rows],
             "faults": [r["faults_week"] for r in rows]}
    return render_template("district/index.html", rows=rows, week=week, chart=chart)
