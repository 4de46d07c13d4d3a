"""Faults and alerts: alerts (open / acknowledged / resolved) with acknowledgement, the fault
register (故障登记簿: register a fault, fill in the repair record), and the 报修 form for teachers.
The data and its rules are the alerts area's (alerts.store, alerts.faultlog)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from alerts import faultlog
from alerts import store as alert_store
from collector import codes
from collector.devices import registry
from collector.rates import fault_review
from dashboard import audit, get_db
from dashboard.access import ACK_ROLES, ANY_USER, DEVICE_ROLES, OPERATORS, allow, current_scope
from dashboard.auth import client_ip
from dashboard.i18n import select_locale
from dashboard.overview import page_school

bp = Blueprint("faults", __name__, url_prefix="/faults")
VIEWERS = (*DEVICE_ROLES, "class_teacher")
REPORT_CODES = codes.REPORT_CODES
SEVERITIES = ("info", "warning", "critical")
ALERT_STATES = ("open", "firing", "acknowledged", "resolved", "all")


def _local(school: str) -> Any:
    tz = registry.school_tz(get_db(), school)

    def local(t: float | None) -> str:
        return (registry.iso(t, tz) or "")[:16].replace("T", " ")
    return local


@bp.get("/")
@allow(*VIEWERS)
def index() -> Any:
    scope = current_scope()
    school = page_school(scope)
    state = request.args.get("state", "open")
    if state not in ALERT_STATES:
        abort(400, description=f"state must be one of {', '.join(ALERT_STATES)}")
    db = get_db()
    alerts = scope.visible_device_rows(db, school, alert_store.list_alerts(db, school, state, 300)) if school else []
    all_tickets = request.args.get("tickets") == "all"
    tickets = scope.visible_device_rows(db, school, faultlog.list_tickets(db, school, open_only=not all_tickets))
    return render_template("faults/index.html", school=school, state=state, alerts=alerts, tickets=tickets[:300],
                           local=_local(school), all_tickets=all_tickets,
                           devices=registry.device_places(db, school) if school else [], severities=SEVERITIES)


@bp.post("/alerts/<int:alert_id>/ack")
@allow(*ACK_ROLES)
def ack(alert_id: int) -> Any:
    scope = current_scope()
    db = get_db()
    a = alert_store.get(db, alert_id)
    if a is None or not scope.user.may_see_school(a["school"]):
        abort(404)
    alert_store.acknowledge(db, alert_id, scope.user.name, time.time())
    audit.record(db, scope.user.name, "alert.ack", a["school"], str(alert_id), client_ip(), kind=a["kind"],
                 device=a["device"])
    flash(_("已确认告警：%(s)s", s=a["subject"]), "ok")
    return redirect(url_for("faults.index", school=a["school"], state=request.form.get("state", "open")))


def _when(value: str | None, school: str) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=registry.school_tz(get_db(), school)).timestamp()
    except ValueError:
        raise faultlog.FaultError(f"{value!r} is not a date and time") from None


@bp.post("/register")
@allow(*OPERATORS)
def register() -> Any:
    """故障登记簿: a fault entered by a maintainer, also afterwards (a power cut with its start and end)."""
    scope = current_scope()
    school = page_school(scope)
    f = request.form
    db = get_db()
    code = (f.get("code") or "").strip()
    try:
        if not codes.registerable(code):
            raise faultlog.FaultError(_("请选择故障（%(code)s 不在故障目录中）", code=code or "—"))
        tid = faultlog.register_fault(db, school, f.get("device", ""), code,
                                      f.get("severity", "warning"), scope.user.name, _when(f.get("opened"), school),
                                      _when(f.get("cleared"), school), (f.get("summary") or "").strip() or None)
    except faultlog.FaultError as e:
        flash(_("未登记：%(e)s", e=str(e)), "error")
    else:
        audit.record(db, scope.user.name, "fault.register", school, f.get("device"), client_ip(), ticket=tid,
                     code=f.get("code"))
        flash(_("已登记故障（编号 %(id)d）。", id=tid), "ok")
    return redirect(url_for("faults.index", school=school) + "#register")


def _ticket_or_404(db: Any, scope: Any, ticket_id: int) -> dict[str, Any]:
    """A register entry the user may see, else 404 (an entry of another school does not exist for them)."""
    try:
        t = faultlog.get_ticket(db, ticket_id)
    except faultlog.FaultError:
        abort(404)
    if not scope.user.may_see_school(t["school"]):
        abort(404)
    return t


@bp.route("/tickets/<int:ticket_id>", methods=["GET", "POST"])
@allow(*OPERATORS)
def ticket(ticket_id: int) -> Any:
    """One entry of the fault register: the repair record (cause, responsibility, handling, parts)."""
    scope, db = current_scope(), get_db()
    t = _ticket_or_404(db, scope, ticket_id)
    if request.method == "POST":
        fields = {k: (request.form.get(k) or "").strip() or None for k in faultlog.EDITABLE}
        action = request.form.get("action", "save")
        try:
            faultlog.update_ticket(db, ticket_id, fields, scope.user.name, repaired=action == "repaired",
                                   close=action == "close")
        except faultlog.FaultError as e:
            flash(_("未保存：%(e)s", e=str(e)), "error")
        else:
            audit.record(db, scope.user.name, "fault.update", t["school"], t["device"], client_ip(),
                         ticket=ticket_id, step=action)
            flash(_("故障登记已保存。"), "ok")
        return redirect(url_for("faults.ticket", ticket_id=ticket_id))
    return render_template("faults/ticket.html", t=faultlog.ticket_view(t, registry.school_tz(db, t["school"])),
                           editable=faultlog.EDITABLE, history=fault_review.history(db, int(t["fault_id"])),
                           local=_local(t["school"]), may_review=scope.user.role in fault_review.REVIEW_ROLES)


@bp.post("/tickets/<int:ticket_id>/review")
@allow(*fault_review.REVIEW_ROLES)
def review(ticket_id: int) -> Any:
    """One click: 确认影响上课 (for the entry's interval, or the one given) or 误报."""
    scope, db = current_scope(), get_db()
    t = _ticket_or_404(db, scope, ticket_id)
    f = request.form
    try:
        faultlog.review_ticket(db, ticket_id, f.get("review", ""), scope.user.name, _when(f.get("from"), t["school"]),
                               _when(f.get("to"), t["school"]), via="dashboard")
    except faultlog.FaultError as e:
        flash(_("未核实：%(e)s", e=str(e)), "error")
    else:
        flash(_("已确认影响上课，相关课节已重新计算。") if f["review"] == "confirmed" else
              _("已判为误报，相关课节已重新计算。"), "ok")
    return redirect(url_for("faults.ticket", ticket_id=ticket_id))


@bp.route("/repair", methods=["GET", "POST"])
@allow(*ANY_USER)
def repair() -> Any:
    """报修: anyone may report a broken classroom PC; it goes into the fault register for the maintainers."""
    scope = current_scope()
    user = scope.user
    school = page_school(scope)
    devices = registry.device_places(get_db(), school) if school else []
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
            tid = faultlog.register_fault(db, school, device, f"report_{code}", severity, user.name,
                                          summary=detail or None)
            audit.record(db, user.name, "fault.report", school, device, client_ip(), code=code, severity=severity,
                         ticket=tid)
            flash(_("报修已登记（编号 %(id)d），维护人员会尽快处理。", id=tid), "ok")
            return redirect(url_for("faults.repair", school=school))
    return render_template("faults/repair.html", school=school, devices=devices,
                           codes=codes.report_choices(select_locale()), severities=SEVERITIES,
                           error=error, form=request.form), (400 if error else 200)
