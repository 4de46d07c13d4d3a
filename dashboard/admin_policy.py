"""Admin: the per-school policy editor: software rules, in-use settings and the USB allow-list
(collector.devices.policy; published retained to the school's PCs)."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from collector.devices import policy
from collector.devices.policy import PolicyError, UnsafePolicyError
from dashboard import audit, get_db, sending
from dashboard.access import allow
from dashboard.admin import actor, bp
from dashboard.auth import client_ip
from dashboard.overview import schools_known


def _lines(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\r", "").split("\n") if x.strip()]


def policy_from_form(form: Any, current: dict[str, Any]) -> dict[str, Any]:
    """The policy object from the editor's fields, keeping keys the form does not show."""
    def number(key: str) -> Any:
        raw = (form.get(key) or "").strip()
        try:
            return int(raw) if raw.isdigit() else float(raw)
        except ValueError:
            return raw  # validation names the field
    obj = dict(current)
    obj["software"] = dict(current.get("software", {}), deny=_lines(form.get("deny", "")),
                           allow=_lines(form.get("allow", "")), action=form.get("action", "report"))
    obj["teaching_apps"] = _lines(form.get("teaching_apps", ""))
    obj["idle_minutes"] = number("idle_minutes")
    obj["heartbeat_s"] = number("heartbeat_s")
    obj["shutdown_after"] = (form.get("shutdown_after") or "").strip() or None
    if "usb_allow_labels" in form:  # protocol 1.2: the USB allow-list and block (严禁无关U盘)
        obj["usb"] = {"allow_labels": _lines(form.get("usb_allow_labels", "")),
                      "allow_ids": _lines(form.get("usb_allow_ids", "")), "block": form.get("usb_block") == "1"}
    return obj


def unsafe_message(e: UnsafePolicyError) -> str:
    """Why the policy was refused, one sentence per rule (in the user's language)."""
    parts = [_("禁止规则“%(rule)s”会命中系统程序 %(hit)s", rule=p.rule, hit=p.hits) if p.hits else
             _("禁止规则“%(rule)s”会命中所有程序", rule=p.rule) for p in e.problems]
    return _("策略未保存：%(why)s。这样的规则可能结束系统或桌面程序，请写出要禁止的具体程序名，例如 qq.exe。",
             why="；".join(parts))


@bp.route("/policy", methods=["GET", "POST"])
@allow("admin")
def policy_editor() -> Any:
    schools = schools_known()
    school = request.values.get("school") or (schools[0] if schools else "")
    if not school:
        return render_template("admin/policy.html", school=None, schools=schools, p=None, error=None)
    db = get_db()
    current = policy.get_policy(db, school)
    error = None
    if request.method == "POST":
        obj = policy_from_form(request.form, current["policy"])
        try:
            stored, published = sending.save_policy(db, school, obj)
        except UnsafePolicyError as e:
            error = unsafe_message(e)
        except PolicyError as e:
            error = str(e)
        else:
            audit.record(db, actor(), "policy.set", school, None, client_ip(), version=stored["version"],
                         published=published, deny=len(obj["software"]["deny"]), allow=len(obj["software"]["allow"]),
                         usb_allow=len(obj.get("usb", {}).get("allow_labels", [])) + len(obj.get("usb", {}).get(
                             "allow_ids", [])), usb_block=bool(obj.get("usb", {}).get("block")))
            flash(_("策略已保存（第 %(v)d 版）并发布到各教室电脑。", v=stored["version"]) if published else
                  _("策略已保存（第 %(v)d 版），连上 MQTT 代理后发布。", v=stored["version"]), "ok")
            return redirect(url_for("admin.policy_editor", school=school))
        current = dict(current, policy=obj)
    return render_template("admin/policy.html", school=school, schools=schools, p=current, error=error), \
        (400 if error else 200)
