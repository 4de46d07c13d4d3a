"""Faults and alerts: the lists, acknowledging, the fault register, and the 报修 form for teachers."""
from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from collector import registry
from collector.store import open_fault
from dashboard import audit, get_db
from dashboard.access import ANY_USER, DEVICE_ROLES, Scope, allow
from dashboard.auth import client_ip, current_user
from dashboard.overview import page_school

bp = Blueprint("faults", __name__, url_prefix="/faults")
VIEWERS = (*DEVICE_ROLES, "class_teacher")
REPORT_CODES = ("no_power", "display_missing", "no_sound", "projector", "touch", "network", "slow", "other")
SEVERITIES = ("info", "warning", "critical")


def _scope() -> Scope:
    user = current_user()
    assert user is not None
    return Scope(user)


def fault_rows(school: str, state: str, scope: Scope) -> list[dict[str, Any]]:
    db = get_db()
    cond = {"open": "f.cleared_t IS NULL", "cleared": "f.cleared_t IS NOT NULL"}.get(state, "1 = 1")
    rows = db.query(f"SELECT f.*, d.class, d.room, d.building, d.floor FROM faults f LEFT JOIN devices d "
                    f"ON d.school = f.school AND d.device = f.device WHERE f.school = ? AND {cond} "
                    f"ORDER BY f.opened_t DESC LIMIT 500", (school,))
    return [r for r in rows if scope.sees_device_of_class(r["class"])]


@bp.get("/")
@allow(*VIEWERS)
def index() -> Any:
    scope = _scope()
    school = page_school(scope)
    state = request.args.get("state", "open")
    if state not in ("open", "cleared", "all"):
        abort(400, description="state must be open, cleared or all")
    tz = registry.school_tz(get_db(), school)

    def local(t: float | None) -> str:
        return (registry.iso(t, tz) or "")[:16].replace("T", " ")
    return render_template("faults/index.html", school=school, state=state, faults=fault_rows(school, state, scope),
                           local=local)


def _device_choices(school: str) -> list[dict[str, Any]]:
    return get_db().query("SELECT device, class, room, building, floor FROM devices WHERE school = ? "
                          "ORDER BY building, floor, room, device", (school,))


@bp.route("/repair", methods=["GET", "POST"])
@allow(*ANY_USER)
def repair() -> Any:
    """报修: anyone may report a broken classroom PC; it opens a fault (source 'report') for the maintainers."""
    scope = _scope()
    user = scope.user
    school = page_school(scope)
    devices = _device_choices(school)
    if user.role == "class_teacher":
        devices = [d for d in devices if d["class"] == user.klass] or devices
    error = None
    if request.method == "POST":
        device = request.form.get("device", "")
        code = request.form.get("code", "")
        detail = (request.form.get("detail") or "").strip()[:500]
        severity = request.form.get("severity", "warning")
        if device not in {d["device"] for d in devices}:
            error = _("请选择设备")
        elif code not in REPORT_CODES:
            error = _("请选择故障现象")
        elif severity not in SEVERITIES:
            error = _("请选择影响程度")
        elif code == "other" and not detail:
            error = _("选择“其他”时请填写故障描述")
        else:
            db = get_db()
            with db.transaction():
                opened = open_fault(db, school, device, f"report_{code}", severity, f"report:{user.name}",
                                    detail or None, time.time())
                audit.record(db, user.name, "fault.report", school, device, client_ip(), code=code,
                             severity=severity, new=opened)
            if opened:
                flash(_("报修已登记，维护人员会尽快处理。"), "ok")
            else:
                flash(_("该设备的同类故障已登记过，尚未处理完毕。"), "ok")
            return redirect(url_for("faults.repair", school=school))
    return render_template("faults/repair.html", school=school, devices=devices, codes=REPORT_CODES,
                           severities=SEVERITIES, error=error, form=request.form), (400 if error else 200)
