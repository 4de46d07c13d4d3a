"""电源管理: group commands by building, floor or whole school (preview, confirmation, per-PC results
as they arrive, tally), 雷雨关机, wake-on-LAN switch-on (button and schedule). Maintainers and admins
only (access.OPERATORS); every action audited. The logic is in collector.operations.power /
collector.operations.wake."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from collector.devices import registry
from collector.devices.commands import CommandError
from collector.operations import power, wake
from dashboard import audit, get_db, sending
from dashboard.access import OPERATORS, allow, current_scope
from dashboard.auth import client_ip
from dashboard.overview import page_school

bp = Blueprint("power", __name__, url_prefix="/power")
ACTIONS = ("shutdown", "storm", "message", "cancel_shutdown", "wake")


def _where() -> tuple[str | None, str | None]:
    src = request.form if request.method == "POST" else request.args
    return (src.get("building") or None), (src.get("floor") or None)


@bp.get("/")
@allow(*OPERATORS)
def index() -> Any:
    school = page_school(current_scope())
    db = get_db()
    recent = power.recent(db, school) if school else []
    for a in recent:
        a["when"] = _local(a["created"], school)
    return render_template("power/index.html", school=school, buildings=power.buildings(db, school) if school else {},
                           recent=recent, labels=action_labels(), scope_name=scope_name,
                           schedule=wake.get_schedule(db, school) if school else None)


def _action(src: Any) -> str:
    action = src.get("action", "")
    if action not in ACTIONS:
        abort(400, description=f"action must be one of {', '.join(ACTIONS)}")
    return action


@bp.get("/preview")
@allow(*OPERATORS)
def preview() -> Any:
    """The PCs the action reaches (online ones; offline ones are listed, nothing is sent to them)."""
    school = page_school(current_scope())
    action = _action(request.args)
    building, floor = _where()
    try:
        devices = power.scope_devices(get_db(), school, building, floor)
    except CommandError as e:
        abort(400, description=str(e))
    reach = [d for d in devices if (not d["online"]) == (action == "wake")]
    return render_template("power/preview.html", school=school, action=action, building=building, floor=floor,
                           scope=scope_name(building, floor), devices=devices, reach=reach,
                           text=request.args.get("text", ""), delay_s=request.args.get("delay_s", "60"),
                           in_use=sum(1 for d in reach if d["in_use"]))


def _args(action: str) -> dict[str, Any]:
    text = (request.form.get("text") or "").strip()
    if action == "storm":
        return power.storm_args(text or None)
    if action == "shutdown":
        return {"delay_s": int(request.form.get("delay_s") or 60), **({"text": text} if text else {})}
    if action == "message":
        return {"text": text}
    return {}


@bp.post("/send")
@allow(*OPERATORS)
def send() -> Any:
    scope = current_scope()
    school = page_school(scope)
    action = _action(request.form)
    building, floor = _where()
    if request.form.get("confirm") != "yes":
        flash(_("请勾选确认后再发送。"), "error")
        return redirect(url_for("power.preview", school=school, action=action, building=building or "",
                                floor=floor or ""))
    db = get_db()
    try:
        if action == "wake":
            action_id, created = wake.create_wake(db, school, scope.user.name, building, floor)
        else:
            kind = "shutdown" if action == "storm" else action
            action_id, created = power.create_group(db, school, kind, _args(action), scope.user.name, building,
                                                    floor, action="storm" if action == "storm" else "command")
    except (CommandError, ValueError) as e:
        flash(_("命令未发送：%(e)s", e=str(e)), "error")
        return redirect(url_for("power.index", school=school))
    published = sending.publish_created(db, created)
    audit.record(db, scope.user.name, "power." + action, school, power.scope_label(building, floor), client_ip(),
                 action_id=action_id, commands=len(created), published=published)
    return redirect(url_for("power.result", action_id=action_id))


def _results(action_id: str) -> dict[str, Any]:
    res = power.results(get_db(), action_id)
    if res is None:
        abort(404)
    current_scope().school(res["action"]["school"])
    return res


@bp.get("/<action_id>")
@allow(*OPERATORS)
def result(action_id: str) -> Any:
    r = _results(action_id)
    return render_template("power/result.html", r=r, labels=result_labels(), actions=action_labels(),
                           scope=scope_name(r["action"]["building"], r["action"]["floor"]),
                           when=_local(r["action"]["created"], r["action"]["school"]))


@bp.get("/<action_id>/data")
@allow(*OPERATORS)
def result_data(action_id: str) -> Any:
    res = _results(action_id)
    return jsonify(targets=res["targets"], tally=res["tally"], total=res["total"], done=res["done"])


@bp.post("/schedule")
@allow(*OPERATORS)
def schedule() -> Any:
    scope = current_scope()
    school = page_school(scope)
    enabled = request.form.get("enabled") == "yes"
    try:
        minutes = int(request.form.get("minutes_before") or wake.DEFAULT_MINUTES_BEFORE)
        wake.set_schedule(get_db(), school, enabled, minutes, scope.user.name)
    except (CommandError, ValueError) as e:
        flash(_("开机计划未保存：%(e)s", e=str(e)), "error")
        return redirect(url_for("power.index", school=school))
    audit.record(get_db(), scope.user.name, "power.wake_schedule", school, None, client_ip(), enabled=enabled,
                 minutes_before=minutes)
    flash(_("开机计划已保存。"), "ok")
    return redirect(url_for("power.index", school=school))


def _local(t: float, school: str) -> str:
    return (registry.iso(t, registry.school_tz(get_db(), school)) or "")[:16].replace("T", " ")


def scope_name(building: str | None, floor: str | None) -> Markup:
    """The scope as a page shows it: a building and floor are names (data, not translated), the whole
    school is words of the page."""
    if building:
        return Markup('<span translate="no">%s</span>') % power.scope_label(building, floor)
    return Markup.escape(_("全校"))


def action_labels() -> dict[str, str]:
    return {"shutdown": _("关机"), "storm": _("雷雨关机"), "message": _("发送消息"), "cancel_shutdown": _("取消关机"),
            "wake": _("远程开机（网络唤醒）")}


def result_labels() -> dict[str, str]:
    return {"waiting": _("等待确认"), "acked": _("已执行"),
            "packet_sent": _("已发唤醒包，等待开机"), "refused": _("被拒绝"), "no_answer": _("无应答"),
            "offline": _("离线（未发送）"), "online": _("已开机"), "no_peer": _("同网段无在线电脑"),
            "no_address": _("无网卡信息"), "already_on": _("已在线")}
