"""Alerts and the fault register over HTTP: /api/v1/alerts (protocol.md §4), /api/v1/faults, and the
signed acknowledgement link sent in messages (/alerts/ack)."""
from __future__ import annotations

import os
import tempfile
import time
from datetime import date, datetime
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request, send_file

import protocol
from alerts import faultlog, store
from alerts.rules import fault_title
from collector.devices import registry
from collector.rates import fault_review
from dashboard import get_db
from dashboard.access import ACK_ROLES, ANY_USER, DEVICE_ROLES, OPERATORS, PUBLIC, allow, current_scope
from dashboard.api import bp as api
from dashboard.api import resolve_school
from dashboard.auth import current_user

bp = Blueprint("alert_links", __name__)
VIEWERS = (*DEVICE_ROLES, "class_teacher")


def _visible(school: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Device roles see the whole school; a class teacher only their class's devices."""
    return current_scope().visible_device_rows(get_db(), school, rows)


@api.get("/alerts")
@allow(*VIEWERS)
def alerts() -> Any:
    school = resolve_school()
    try:
        rows = store.list_alerts(get_db(), school, request.args.get("state") or "open")
    except store.AlertError as e:
        abort(400, description=str(e))
    tz = registry.school_tz(get_db(), school)
    return jsonify([{"id": a["id"], "kind": a["kind"], "severity": a["severity"], "device": a["device"],
                     "opened": registry.iso(a["opened"], tz), "acked_by": a["acked_by"], "state": a["state"]}
                    for a in _visible(school, rows)])


def _alert_or_404(alert_id: int) -> dict[str, Any]:
    a = store.get(get_db(), alert_id)
    user = current_user()
    if a is None or user is None or not user.may_see_school(a["school"]) or not _visible(a["school"], [a]):
        abort(404, description=f"no alert {alert_id}")
    return a


@api.get("/alerts/<int:alert_id>")
@allow(*VIEWERS)
def alert_detail(alert_id: int) -> Any:
    a = _alert_or_404(alert_id)
    tz = registry.school_tz(get_db(), a["school"])
    return jsonify({**a, "opened": registry.iso(a["opened"], tz), "acked_t": registry.iso(a["acked_t"], tz),
                    "resolved_t": registry.iso(a["resolved_t"], tz), "last_seen": registry.iso(a["last_seen"], tz),
                    "last_notified": registry.iso(a["last_notified"], tz)})


@api.post("/alerts/<int:alert_id>/ack")
@allow(*ACK_ROLES)
def alert_ack(alert_id: int) -> Any:
    a = _alert_or_404(alert_id)
    user = current_user()
    assert user is not None
    row = store.acknowledge(get_db(), a["id"], user.name, time.time())
    return jsonify({"id": row["id"], "state": row["state"], "acked_by": row["acked_by"]})


# -- fault register -------------------------------------------------------------------
def _time_arg(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    try:
        return protocol.parse_time(value, key).timestamp()
    except ValueError as e:
        abort(400, description=str(e))


@api.get("/faults")
@allow(*VIEWERS)
def faults_list() -> Any:
    """The register (protocol.md §4): ?state=open|all (open: not closed), ?review=pending|confirmed|rejected."""
    school = resolve_school()
    db = get_db()
    since, until = _term_args()
    state = request.args.get("state") or ("open" if request.args.get("open") in ("1", "true") else "all")
    review = request.args.get("review") or None
    if state not in ("open", "all"):
        abort(400, description=f"state must be open or all, not {state!r}")
    if review is not None and review not in fault_review.REVIEW_ZH:
        abort(400, description=f"review must be one of {', '.join(fault_review.REVIEW_ZH)}, not {review!r}")
    faultlog.sync_tickets(db, school, time.time())  # an agent's fault is in the register at once
    rows = faultlog.list_tickets(db, school, since, until, open_only=state == "open", review=review)
    tz = registry.school_tz(db, school)
    return jsonify([faultlog.ticket_view(t, tz) for t in _visible(school, rows)])


REVIEW_KEYS = ("review", "from", "to")


@api.post("/faults/<int:ticket_id>/review")
@allow(*fault_review.REVIEW_ROLES)
def faults_review(ticket_id: int) -> Any:
    """Confirm an entry as affecting teaching (影响上课), for an interval, or reject it (误报)."""
    user = current_user()
    assert user is not None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='the body must be a JSON object like {"review": "confirmed"}')
    bad = sorted(set(body) - set(REVIEW_KEYS))
    if bad:
        abort(400, description=f"unknown keys {', '.join(bad)} (allowed: {', '.join(REVIEW_KEYS)})")
    db = get_db()
    try:
        t = faultlog.get_ticket(db, ticket_id)
    except faultlog.FaultError:
        abort(404, description=f"no fault {ticket_id}")
    if not user.may_see_school(t["school"]):
        abort(404, description=f"no fault {ticket_id}")
    try:
        t = faultlog.review_ticket(db, ticket_id, str(body.get("review")), user.name, _time_arg(body, "from"),
                                   _time_arg(body, "to"), via="api")
    except faultlog.FaultError as e:
        abort(400, description=str(e))
    return jsonify(faultlog.ticket_view(t, registry.school_tz(db, t["school"])))


def _term_args() -> tuple[float | None, float | None]:
    """?term=YYYY-MM-DD (the school term containing that day) or ?from=&to= dates."""
    try:
        if request.args.get("term"):
            a, b = faultlog.term_bounds(date.fromisoformat(request.args["term"]))
        elif request.args.get("from") or request.args.get("to"):
            a = date.fromisoformat(request.args.get("from") or "2000-01-01")
            b = date.fromisoformat(request.args.get("to") or "2100-01-01")
        else:
            return None, None
    except ValueError:
        abort(400, description="term/from/to must be dates like 2026-11-23")
    tz = registry.school_tz(get_db(), resolve_school())
    return (datetime(a.year, a.month, a.day, tzinfo=tz).timestamp(),
            datetime(b.year, b.month, b.day, tzinfo=tz).timestamp())


@api.get("/faults/stats")
@allow(*VIEWERS)
def faults_stats() -> Any:
    school = resolve_school()
    since, until = _term_args()
    return jsonify(faultlog.stats(_visible(school, faultlog.list_tickets(get_db(), school, since, until))))


@api.get("/faults.xlsx")
@allow(*VIEWERS)
def faults_xlsx() -> Any:
    school = resolve_school()
    db = get_db()
    since, until = _term_args()
    rows = _visible(school, faultlog.list_tickets(db, school, since, until))
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        faultlog.export_xlsx(rows, registry.school_tz(db, school), path)
        with open(path, "rb") as f:
            data = f.read()
    finally:
        os.unlink(path)
    import io

    return send_file(io.BytesIO(data), as_attachment=True, download_name=f"故障登记簿-{school}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@api.post("/faults")
@allow(*ANY_USER)
def faults_report() -> Any:
    """A teacher's 报修, or a fault entered afterwards (a power cut with its start and end)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    user = current_user()
    assert user is not None
    school = str(body.get("school") or user.school or "")
    if not school or not user.may_see_school(school):
        abort(403 if school else 400)
    device = str(body.get("device") or "")
    if user.role == "class_teacher" and registry.device_classes(get_db(), school).get(device) != user.klass:
        abort(403)
    try:
        tid = faultlog.register_fault(get_db(), school, device, str(body.get("code") or "other"),
                                      str(body.get("severity") or "warning"), user.name,
                                      _time_arg(body, "opened"), _time_arg(body, "cleared"), body.get("summary"))
    except faultlog.FaultError as e:
        abort(400, description=str(e))
    t = faultlog.get_ticket(get_db(), tid)
    return jsonify(faultlog.ticket_view(t, registry.school_tz(get_db(), school))), 201


@api.patch("/faults/<int:ticket_id>")
@allow(*OPERATORS)
def faults_update(ticket_id: int) -> Any:
    """The repair record: cause, responsibility, handling, repair_record, parts; repaired / close."""
    user = current_user()
    assert user is not None
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    db = get_db()
    try:
        t = faultlog.get_ticket(db, ticket_id)
        if not user.may_see_school(t["school"]):
            abort(404)
        fields = {k: v for k, v in body.items() if k not in ("repaired", "close")}
        t = faultlog.update_ticket(db, ticket_id, fields, user.name, bool(body.get("repaired")),
                                   bool(body.get("close")))
    except faultlog.FaultError as e:
        abort(400, description=str(e))
    return jsonify(faultlog.ticket_view(t, registry.school_tz(db, t["school"])))


# -- the link in the message: GET shows, POST acknowledges (link previews must not ack) ----------
def _link_args() -> tuple[list[int], str, str]:
    src = request.form if request.method == "POST" else request.args
    try:
        ids = [int(x) for x in str(src.get("ids", "")).split(",") if x]
    except ValueError:
        ids = []
    return ids, str(src.get("by", "")), str(src.get("t", ""))


@bp.route("/alerts/ack", methods=["GET", "POST"])
@allow(PUBLIC)
def link_ack() -> Any:
    db = get_db()
    ids, person, token = _link_args()
    if not ids or not person or not store.verify(store.secret(db), ids, person, token):
        return render_template("alert_ack.html", error="链接无效或已被修改", alerts=[], done=False), 400
    if request.method == "POST":
        for i in ids:
            if store.get(db, i) is not None:
                store.acknowledge(db, i, person, time.time())
    alerts = [a for a in (store.get(db, i) for i in ids) if a is not None]
    return render_template("alert_ack.html", alerts=alerts, person=person, ids=",".join(map(str, ids)), token=token,
                           done=request.method == "POST", error=None)


# -- the review link in a fault alert's message: GET shows the entries, POST reviews one -------------
@bp.route("/faults/review", methods=["GET", "POST"])
@allow(PUBLIC)
def link_review() -> Any:
    """Signed for the channel's person; only a maintainer or admin of the school may review through it."""
    db = get_db()
    ids, person, token = _link_args()
    if not ids or not person or not store.verify_review(store.secret(db), ids, person, token):
        return render_template("fault_review_link.html", error="链接无效或已被修改", entries=[]), 400
    entries = []
    for i in ids:
        try:
            entries.append(fault_review.get_fault(db, i))
        except fault_review.NoSuchFault:
            continue
    if entries and not fault_review.may_review(db, person, entries[0]["school"]):
        return render_template("fault_review_link.html", error=f"{person} 无权核实故障登记（仅维护人员或管理员）",
                               entries=[]), 403
    done = None
    if request.method == "POST":
        try:
            fid = int(request.form.get("fault", ""))
        except ValueError:
            fid = -1
        if fid not in ids:
            abort(400, description="fault is not one of this link's entries")
        try:
            fault_review.review_fault(db, fid, request.form.get("review", ""), person, via="link")
        except fault_review.ReviewError as e:
            return render_template("fault_review_link.html", error=str(e), entries=entries), 400
        done = fid
        entries = [fault_review.get_fault(db, i) for i in ids if any(e["id"] == i for e in entries)]
    tz = registry.school_tz(db, entries[0]["school"]) if entries else None
    return render_template("fault_review_link.html", error=None, entries=entries, person=person, token=token,
                           ids=",".join(map(str, ids)), done=done, review_zh=fault_review.REVIEW_ZH,
                           title=fault_title, reviewable=fault_review.reviewable,
                           when=lambda t: (registry.iso(t, tz) or "")[:16].replace("T", " ") if tz else "")
