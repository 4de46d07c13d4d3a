"""HTML pages: the device overview (more areas grow here as blueprints)."""
from __future__ import annotations

from itertools import groupby
from typing import Any

from flask import Blueprint, render_template, request

from collector import registry
from dashboard import get_db
from dashboard.auth import current_user, login_required

bp = Blueprint("pages", __name__)

STATE_LABELS = {"in_use": "使用中", "idle": "开机空闲", "offline": "离线/关机", "fault": "故障"}


def device_state(d: dict[str, Any]) -> str:
    if d["online"] and d["open_faults"]:
        return "fault"
    if not d["online"]:
        return "offline"
    return "in_use" if d["in_use"] else "idle"


@bp.get("/")
@login_required
def overview() -> Any:
    user = current_user()
    assert user is not None
    db = get_db()
    schools = [r["school"] for r in db.query("SELECT DISTINCT school FROM devices ORDER BY school")]
    school = request.args.get("school") or user.school or (schools[0] if schools else "")
    devices = registry.list_devices(db, school) if school and user.may_see_school(school) else []
    if user.role == "class_teacher":
        devices = [d for d in devices if d["class"] == user.klass]
    for d in devices:
        d["state"] = device_state(d)
    counts = {k: sum(1 for d in devices if d["state"] == k) for k in STATE_LABELS}
    floors = [(k, list(v)) for k, v in groupby(devices, key=lambda d: (d["building"] or "", d["floor"] or ""))]
    return render_template("overview.html", school=school, floors=floors, counts=counts,
                           labels=STATE_LABELS, total=len(devices))
