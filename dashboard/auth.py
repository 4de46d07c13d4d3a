"""Login (server-side session behind the cookie), password changes, API tokens (Bearer)."""
from __future__ import annotations

import math
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from dashboard import get_db, throttle
from dashboard import sessions as store
from dashboard.access import ANY_USER, PUBLIC, allow
from dashboard.users import MIN_PASSWORD, User, UserError, check_password, get_user, set_password, user_for_token

bp = Blueprint("auth", __name__)


def client_ip() -> str:
    return request.remote_addr or "-"


def load_user() -> None:
    """before_request: the user from a Bearer token or the session, and whether they must change password."""
    g.user = None
    g.via_token = False
    g.password_change_required = False
    db = get_db()
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.user = user_for_token(db, header[7:].strip())
        g.via_token = True
        return
    sid = session.get("sid")
    if not sid:
        return
    name = store.lookup(db, sid)
    user = get_user(db, name) if name else None
    if user is None:
        session.pop("sid", None)
        return
    g.user = user
    g.password_change_required = user.must_change or user.password_expired(current_app.config["PASSWORD_MAX_DAYS"])


def current_user() -> User | None:
    return g.get("user")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Any signed-in role may call the view, which then checks finer rights itself (abort(403)).

    Prefer ``@allow(roles...)`` from dashboard.access: the role matrix test reads it."""
    if not hasattr(view, "_bbt_roles"):
        view._bbt_roles = ANY_USER  # type: ignore[attr-defined]
    return view


def safe_next(value: str | None) -> str:
    """``value`` when it is a path of this site, else "/": it must begin with one "/" and hold no scheme,
    host, backslash or control character, also once percent-decoded (``//evil``, ``/\\evil``,
    ``/%5Cevil``, ``https://evil``, ``/\t/evil`` are all refused)."""
    if not value or len(value) > 2000:
        return "/"
    text = value
    for _round in range(3):  # %255C -> %5C -> \
        if not text.startswith("/") or text.startswith("//") or "\\" in text:
            return "/"
        if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in text):
            return "/"
        parts = urlsplit(text)
        if parts.scheme or parts.netloc:
            return "/"
        decoded = unquote(text)
        if decoded == text:
            return value
        text = decoded
    return "/"


@bp.route("/login", methods=["GET", "POST"])
@allow(PUBLIC)
def login() -> Any:
    error, status = None, 200
    if request.method == "POST":
        db = get_db()
        name = request.form.get("username", "").strip()[:100]
        wait = throttle.locked_for(db, name, client_ip())
        if wait > 0:
            error = (_("登录失败次数过多，请 %(n)d 秒后再试。", n=math.ceil(wait)) if wait < 60 else
                     _("登录失败次数过多，请 %(n)d 分钟后再试。", n=math.ceil(wait / 60)))
            status = 429
        else:
            user = check_password(db, name, request.form.get("password", ""))
            throttle.note_attempt(db, name, client_ip(), user is not None)
            if user is not None:
                old = session.get("sid")
                if old:
                    store.revoke(db, old)
                lang = session.get("lang")
                session.clear()  # a new session (and a new id) at every login
                session.permanent = True
                session["sid"] = store.create(db, user.name, client_ip())
                if lang:
                    session["lang"] = lang
                return redirect(safe_next(request.args.get("next")))
            error, status = _("用户名或密码错误"), 401
    return render_template("auth/login.html", error=error), status


@bp.post("/logout")
@allow(PUBLIC)
def logout() -> Any:
    sid = session.get("sid")
    if sid:
        store.revoke(get_db(), sid)
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
@allow(*ANY_USER)
def password() -> Any:
    user = current_user()
    assert user is not None
    db = get_db()
    error = None
    if request.method == "POST":
        new = request.form.get("new", "")
        if check_password(db, user.name, request.form.get("current", "")) is None:
            error = _("当前密码不正确")
        elif new != request.form.get("confirm", ""):
            error = _("两次输入的新密码不一致")
        elif len(new) < MIN_PASSWORD:
            error = _("新密码至少需要 %(n)d 个字符", n=MIN_PASSWORD)
        elif new == request.form.get("current") or new == user.name:
            error = _("新密码不能与旧密码或用户名相同")
        else:
            try:
                set_password(db, user.name, new)
            except UserError as e:
                error = str(e)
            else:
                store.revoke_user(db, user.name, keep=session.get("sid"))
                return redirect(url_for("overview.index"))
    reason = None
    if g.password_change_required:
        reason = (_("首次登录或密码被重置，请先修改密码。") if user.must_change else
                  _("密码已超过 %(n)d 天未修改，请修改密码。", n=int(current_app.config["PASSWORD_MAX_DAYS"])))
    return render_template("auth/password.html", error=error, reason=reason), (400 if error else 200)
