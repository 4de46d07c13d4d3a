"""Devices: the list, and one device's detail (timeline, sessions, software, inventory, drift, faults)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from alerts import config as alert_config
from collector.devices import commands, projectors, registry
from collector.devices.commands import CommandError
from collector.intake import inventory, protection
from collector.rates import outside_use, queries
from dashboard import audit, devicedata, devstate, get_db, sending
from dashboard.access import DEVICE_ROLES, OPERATORS, allow, current_scope
from dashboard.auth import client_ip
from dashboard.overview import page_school, visible_devices

bp = Blueprint("devices", __name__, url_prefix="/devices")
VIEWERS = (*DEVICE_ROLES, "class_teacher")


@bp.get("/")
@allow(*VIEWERS)
def index() -> Any:
    scope = current_scope()
    school = page_school(scope)
    devices = visible_devices(scope, school)
    state = request.args.get("state")
    shown = [d for d in devices if not state or d["state"] == state]
    q = (request.args.get("q") or "").strip().lower()
    if q:
        shown = [d for d in shown if q in " ".join(str(d.get(k) or "") for k in ("device", "class", "room")).lower()]
    return render_template("devices/index.html", school=school, devices=shown, counts=devstate.counts(devices),
                           state=state, q=q, states=devstate.STATES)


def device_row(school: str, device: str) -> dict[str, Any]:
    rows = [d for d in registry.list_devices(get_db(), school) if d["device"] == device]
    if not rows:
        abort(404)
    return devstate.with_states(rows)[0]


@bp.get("/<school>/<device>")
@allow(*VIEWERS)
def detail(school: str, device: str) -> Any:
    scope = current_scope()
    scope.school(school)
    d = device_row(school, device)
    if not scope.sees_device_of_class(d["class"]):
        abort(403)
    db = get_db()
    tz = registry.school_tz(db, school)
    now = time.time()
    days = devicedata.last_days(datetime.fromtimestamp(now, tz).date(), 7)
    since = datetime.combine(days[0], datetime.min.time(), tz).timestamp()
    online = devicedata.online_spans(devicedata.status_changes(db, school, device, since), since, now)
    in_use = devicedata.sessions(db, school, device, since, now)
    month = now - 31 * 86400

    def local(t: float | None) -> str:
        return (registry.iso(t, tz) or "")[:16].replace("T", " ")
    return render_template(
        "devices/detail.html", school=school, d=d, local=local,
        timeline=devicedata.day_rows(days, tz, online, in_use),
        sessions=[(s, e, round((e - s) / 60)) for s, e in sorted(in_use, reverse=True)][:50],
        software=queries.device_events(db, school, device, "software", month),
        drift=inventory.drift_history(db, school, device, 50),
        software_changes=inventory.software_changes(db, school, device, limit=50),
        usb=queries.device_events(db, school, device, "usb", month, 50),
        inventory=inventory.latest_inventory(db, school, device),
        protection=protection.state(db, school, device, alert_config.load(db, school)["rules"]["protection"]),
        projector=projectors.projector_state(db, school, device),
        faults=queries.device_faults(db, school, device),
        statuses=list(reversed(devicedata.status_changes(db, school, device, month)))[:30],
        commands=device_commands(school, device), kinds=COMMAND_KINDS,
        outside=outside_use.device_rows(db, school, device, days[-1], len(days), now) if d["class"] else [],
    )


def device_commands(school: str, device: str) -> list[dict[str, Any]]:
    return commands.list_commands(get_db(), school=school, device=device, limit=30)


COMMAND_KINDS = ("shutdown", "message", "cancel_shutdown", "refresh_inventory")


def command_args(kind: str, form: Any) -> dict[str, Any]:
    """The command's args from the form (validated again by collector.devices.commands.create)."""
    text = (form.get("text") or "").strip()
    if kind == "shutdown":
        args: dict[str, Any] = {"delay_s": int(form.get("delay_s") or 60)}
        if text:
            args["text"] = text
        return args
    if kind == "message":
        return {"text": text, "duration_s": int(form.get("duration_s") or 30)}
    return {}


@bp.post("/<school>/<device>/command")
@allow(*OPERATORS)
def command(school: str, device: str) -> Any:
    """Send a shutdown or a message to one PC; the form must carry the confirmation."""
    scope = current_scope()
    scope.school(school)
    device_row(school, device)
    kind = request.form.get("kind", "")
    if kind not in COMMAND_KINDS:
        abort(400, description=f"kind must be one of {', '.join(COMMAND_KINDS)}")
    if request.form.get("confirm") != "yes":
        flash(_("请勾选确认后再发送。"), "error")
        return redirect(url_for("devices.detail", school=school, device=device) + "#actions")
    db = get_db()
    try:
        created, now = sending.send_commands(db, kind, command_args(kind, request.form), [(school, device)])
    except (CommandError, ValueError) as e:
        flash(_("命令未发送：%(e)s", e=str(e)), "error")
        return redirect(url_for("devices.detail", school=school, device=device) + "#actions")
    cmd_id = created[0]["command"]["id"]
    audit.record(db, scope.user.name, "command." + kind, school, device, client_ip(), command=cmd_id,
                 args=created[0]["command"]["args"], published=now)
    flash(_("命令已发送，等待电脑确认。") if now else _("命令已保存，连上 MQTT 代理后发送。"), "ok")
    return redirect(url_for("devices.detail", school=school, device=device) + "#commands")
