"""Devices: the list, and one device's detail (timeline, sessions, software, inventory, drift, faults)."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from flask import Blueprint, abort, render_template, request

from collector import registry
from dashboard import devicedata, devstate, get_db
from dashboard.access import DEVICE_ROLES, Scope, allow
from dashboard.auth import current_user
from dashboard.overview import page_school, visible_devices

bp = Blueprint("devices", __name__, url_prefix="/devices")
VIEWERS = (*DEVICE_ROLES, "class_teacher")


def _scope() -> Scope:
    user = current_user()
    assert user is not None
    return Scope(user)


@bp.get("/")
@allow(*VIEWERS)
def index() -> Any:
    scope = _scope()
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
    scope = _scope()
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
        software=devicedata.events(db, school, device, "software", month),
        drift=devicedata.events(db, school, device, "drift", month * 0),
        usb=devicedata.events(db, school, device, "usb", month, 50),
        inventory=devicedata.latest_inventory(db, school, device),
        faults=devicedata.faults(db, school, device),
        statuses=list(reversed(devicedata.status_changes(db, school, device, month)))[:30],
        commands=device_commands(school, device),
    )


def device_commands(school: str, device: str) -> list[dict[str, Any]] | None:
    """Commands sent to this device; None until the commands module (issue 3) is on main."""
    return None
