"""Administration (信息中心/电教管理员): users and roles, school settings, the audit log."""
from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from collector.devices import registry
from collector.lessons import usage_settings
from dashboard import audit, get_db, throttle
from dashboard import sessions as session_store
from dashboard.access import allow
from dashboard.auth import client_ip, current_user
from dashboard.overview import schools_known
from dashboard.users import (
    ROLE_NAMES,
    ROLES,
    UserError,
    add_user,
    list_tokens,
    list_users,
    reset_password,
    revoke_token_id,
    revoke_user_tokens,
    update_user,
)

bp = Blueprint("admin", __name__, url_prefix="/admin")


def actor() -> str:
    user = current_user()
    assert user is not None
    return user.name


@bp.get("/")
@allow("admin")
def index() -> Any:
    return render_template("admin/index.html", schools=schools_known())


@bp.get("/users")
@allow("admin")
def users() -> Any:
    db = get_db()
    rows = list_users(db)
    tokens = list_tokens(db)
    failures = throttle.recent_failures(db)
    for r in rows:
        r["tokens"] = [t for t in tokens if t["user_name"] == r["name"] and not t["revoked"]]
        r["failures"] = failures.get(r["name"], 0)
    return render_template("admin/users.html", users=rows, roles=ROLES, role_names=ROLE_NAMES,
                           schools=schools_known(), temp=request.args.get("temp"))


def _form_user() -> tuple[str, str, str | None, str | None]:
    f = request.form
    return (f.get("name", "").strip(), f.get("role", ""), f.get("school", "").strip() or None,
            f.get("class", "").strip() or None)


@bp.post("/users")
@allow("admin")
def user_add() -> Any:
    name, role, school, klass = _form_user()
    temp = secrets.token_urlsafe(9)
    try:
        add_user(get_db(), name, role, temp, school, klass, must_change=True)
    except UserError as e:
        flash(_("无法添加用户：%(e)s", e=str(e)), "error")
        return redirect(url_for("admin.users"))
    audit.record(get_db(), actor(), "user.add", school, name, client_ip(), role=role, klass=klass)
    flash(_("已添加用户 %(name)s。临时密码（只显示这一次，首次登录须修改）：%(pw)s", name=name, pw=temp), "ok")
    return redirect(url_for("admin.users"))


@bp.post("/users/<name>")
@allow("admin")
def user_edit(name: str) -> Any:
    db = get_db()
    action = request.form.get("action", "update")
    try:
        if action == "update":
            _name, role, school, klass = _form_user()
            disabled = request.form.get("disabled") == "1"
            if name == actor() and (disabled or role != "admin"):
                raise UserError(_("不能停用自己或取消自己的管理员角色"))
            update_user(db, name, role, school, klass, disabled)
            if disabled:
                session_store.revoke_user(db, name)
                revoke_user_tokens(db, name)
            audit.record(db, actor(), "user.update", school, name, client_ip(), role=role, klass=klass,
                         disabled=disabled)
            flash(_("已保存 %(name)s。", name=name), "ok")
        elif action == "reset":
            temp = secrets.token_urlsafe(9)
            reset_password(db, name, temp)
            session_store.revoke_user(db, name)
            audit.record(db, actor(), "user.reset_password", None, name, client_ip())
            flash(_("%(name)s 的临时密码（只显示这一次，登录后须修改）：%(pw)s", name=name, pw=temp), "ok")
        elif action == "unlock":
            n = throttle.unlock(db, name, actor())
            audit.record(db, actor(), "user.unlock", None, name, client_ip(), forgiven=n)
            flash(_("已解除 %(name)s 的登录限制。", name=name), "ok")
        elif action == "revoke_tokens":
            n = revoke_user_tokens(db, name)
            audit.record(db, actor(), "token.revoke", None, name, client_ip(), count=n)
            flash(_("已吊销 %(name)s 的 %(n)d 个 API 令牌。", name=name, n=n), "ok")
        elif action == "revoke_token":
            token_id = int(request.form.get("token_id", "0"))
            if revoke_token_id(db, token_id):
                audit.record(db, actor(), "token.revoke", None, name, client_ip(), token_id=token_id)
            flash(_("已吊销令牌 #%(id)d。", id=token_id), "ok")
        else:
            abort(400, description=f"unknown action {action!r}")
    except (UserError, ValueError) as e:
        flash(_("无法保存：%(e)s", e=str(e)), "error")
    return redirect(url_for("admin.users"))


@bp.route("/settings", methods=["GET", "POST"])
@allow("admin")
def settings() -> Any:
    schools = schools_known()
    school = request.values.get("school") or (schools[0] if schools else "")
    if not school:
        return render_template("admin/settings.html", school=None, schools=schools, s={}, error=None)
    error = None
    if request.method == "POST":
        try:
            threshold = float(request.form.get("threshold_pct", "")) / 100
            minutes = int(request.form.get("min_use_minutes", ""))
        except ValueError:
            threshold, minutes = -1.0, -1
        if not 0 < threshold <= 1:
            error = _("达标线须在 1% 到 100% 之间")
        elif not 1 <= minutes <= 45:
            error = _("每节课最少使用分钟数须在 1 到 45 之间")
        else:
            usage_settings.update(get_db(), school, {"threshold": str(threshold), "min_use_minutes": str(minutes)})
            audit.record(get_db(), actor(), "settings.update", school, None, client_ip(), threshold=threshold,
                         min_use_minutes=minutes)
            flash(_("设置已保存。"), "ok")
            return redirect(url_for("admin.settings", school=school))
    return render_template("admin/settings.html", school=school, schools=schools,
                           s=usage_settings.get(get_db(), school), error=error), (400 if error else 200)


@bp.get("/audit")
@allow("admin")
def audit_log() -> Any:
    db = get_db()
    rows = audit.recent(db, 300)
    tz = registry.school_tz(db, "")
    for r in rows:
        r["when"] = (registry.iso(r["t"], tz) or "")[:19].replace("T", " ")
    return render_template("admin/audit.html", rows=rows)
