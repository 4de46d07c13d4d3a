"""Login (session cookie) and API tokens (Bearer); role checks shared by pages and API."""
from __future__ import annotations

import functools
from typing import Any, Callable

from flask import Blueprint, abort, g, jsonify, redirect, render_template, request, session, url_for

from dashboard import get_db
from dashboard.users import User, check_password, get_user, user_for_token

bp = Blueprint("auth", __name__)


def load_user() -> None:
    g.user = None
    header = request.headers.get("Authorization", "")
    db = get_db()
    if header.startswith("Bearer "):
        g.user = user_for_token(db, header[7:].strip())
        g.via_token = True
        return
    name = session.get("user")
    if name:
        g.user = get_user(db, name)
    g.via_token = False


def current_user() -> User | None:
    return g.get("user")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if request.path.startswith("/api/"):
                return jsonify(error="unauthorized", message="需要登录或 API 令牌 (Bearer token)"), 401
            return redirect(url_for("auth.login", next=request.path))
        return view(*args, **kwargs)
    return wrapped


def require_roles(*roles: str) -> None:
    user = current_user()
    if user is None or user.role not in roles:
        abort(403)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        name = request.form.get("username", "")
        user = check_password(get_db(), name, request.form.get("password", ""))
        if user is not None:
            session.clear()  # a fresh session at login
            session["user"] = user.name
            nxt = request.args.get("next") or "/"
            return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/")
        error = "用户名或密码错误"
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))
