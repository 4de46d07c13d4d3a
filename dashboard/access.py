"""Who may call what: every view declares its roles; anything undeclared is refused.

``@allow(...)`` marks a view with the roles that may call it. A ``before_request`` hook
(:func:`enforce`) checks the declaration for every request, so a view added without one is
closed to everybody (default deny) rather than open. What a role may *see* inside an allowed
view (its school, its class, its own lessons) is decided by :class:`Scope`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from flask import abort, current_app, g, jsonify, redirect, request, url_for

from collector.db import Database
from collector.devices import registry
from dashboard.users import ROLES, User

PUBLIC = "public"
ANY_USER = ROLES
SCHOOL_WIDE = ("admin", "headteacher", "bureau")  # see every class and teacher of their school (bureau: all schools)
DEVICE_ROLES = ("admin", "headteacher", "maintainer", "bureau")  # see every device of their school
OPERATORS = ("admin", "maintainer")              # send commands, fill in the fault register
ACK_ROLES = ("admin", "headteacher", "maintainer")
MARK_ROLES = ("admin", "headteacher", "class_teacher", "teacher")  # mark a lesson 外出上课 / 调课
REVERSE_ROLES = ("admin", "headteacher")                          # reverse such a mark
ASSET_READERS = ("admin", "headteacher", "maintainer")            # the asset ledger and stocktakes
ASSET_EDITORS = OPERATORS                                          # edit the ledger, run a stocktake


def allow(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the roles that may call a view (``PUBLIC`` for login, static files...)."""
    for r in roles:
        if r != PUBLIC and r not in ROLES:
            raise ValueError(f"unknown role {r!r}")

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view._bbt_roles = tuple(roles)  # type: ignore[attr-defined]
        return view
    return mark


def declared_roles(endpoint: str | None) -> tuple[str, ...] | None:
    if endpoint is None:
        return None
    if endpoint == "static" or endpoint.endswith(".static"):
        return (PUBLIC,)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "_bbt_roles", None)


def may(user: User | None, endpoint: str) -> bool:
    roles = declared_roles(endpoint)
    if roles is None:
        return False
    return PUBLIC in roles or (user is not None and user.role in roles)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def enforce() -> Any:
    """before_request: 401/login redirect without a user, 403 for a role not declared, password rules."""
    if request.endpoint is None:  # 404/405: let Flask answer
        return None
    roles = declared_roles(request.endpoint)
    if roles is None:
        current_app.logger.error("endpoint %s declares no roles: refused", request.endpoint)
        abort(403)
    if PUBLIC in roles:
        return None
    user: User | None = g.get("user")
    if user is None:
        if _wants_json():
            return jsonify(error="unauthorized", message="需要登录或 API 令牌 (Bearer token)"), 401
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if not g.get("via_token") and g.get("password_change_required") and request.endpoint != "auth.password":
        if _wants_json():
            return jsonify(error="password_change_required", message="请先修改密码"), 403
        return redirect(url_for("auth.password"))
    if user.role not in roles:
        abort(403)
    return None


Rows = list[dict[str, Any]]


def scoped_rates(user: User, by: str, school_rows: Callable[[], Rows], class_rows: Callable[[str], Rows]) -> Rows:
    """The one rule for which usage-rate rows (by ``"teacher"`` or ``"class"``) a user sees, for every page,
    API and export: school-wide roles the whole school (``school_rows()``); a class teacher (班主任) the row of
    their class, or by teacher the rates over their class's lessons only (``class_rows(klass)``); a teacher
    their own row (by teacher only); anyone else 403."""
    if user.role in SCHOOL_WIDE:
        return school_rows()
    if user.role == "class_teacher" and user.klass:
        if by == "class":
            return [r for r in school_rows() if r["class"] == user.klass]
        return class_rows(user.klass)
    if user.role == "teacher" and by == "teacher":
        return [r for r in school_rows() if r["teacher"] == user.name]
    abort(403)


@dataclass(frozen=True)
class Scope:
    """What one user may see inside a school."""

    user: User

    @property
    def school_wide(self) -> bool:
        return self.user.role in SCHOOL_WIDE

    def school(self, asked: str | None, known: Iterable[str] = ()) -> str:
        """The school to show: the one asked for (checked), the user's own, or the first known."""
        school = asked or self.user.school or next(iter(known), None)
        if not school:
            abort(400, description="missing query parameter: school")
        if not self.user.may_see_school(school):
            abort(403)
        return school

    def sees_device_of_class(self, klass: str | None) -> bool:
        if self.user.role in DEVICE_ROLES:
            return True
        return self.user.role == "class_teacher" and klass is not None and klass == self.user.klass

    def visible_device_rows(self, db: Database, school: str, rows: Rows) -> Rows:
        """The rows (alerts, register entries: each names a ``device``) about devices the user sees: device
        roles all of them, a class teacher those of their class's devices
        (collector.devices.registry.device_classes)."""
        if self.user.role in DEVICE_ROLES:
            return rows
        classes = registry.device_classes(db, school)
        return [r for r in rows if r.get("device") and self.sees_device_of_class(classes.get(r["device"]))]

    def sees_class(self, klass: str | None) -> bool:
        if self.school_wide:
            return True
        return self.user.role == "class_teacher" and klass == self.user.klass

    def sees_teacher(self, teacher: str | None) -> bool:
        if self.school_wide:
            return True
        return self.user.role in ("teacher", "class_teacher") and teacher == self.user.name

    def sees_lesson(self, klass: str | None, teacher: str | None) -> bool:
        return self.sees_class(klass) or self.sees_teacher(teacher)

    def may_mark_lesson(self, klass: str | None, teacher: str | None) -> bool:
        """Mark a lesson 外出上课 / 调课: a teacher their own lessons, a class teacher their class's (and
        their own), a headteacher or admin any lesson of their school."""
        if self.user.role in ("admin", "headteacher"):
            return True
        if self.user.role == "class_teacher" and klass is not None and klass == self.user.klass:
            return True
        return self.user.role in ("teacher", "class_teacher") and teacher == self.user.name

    def may_reverse_mark(self) -> bool:
        return self.user.role in REVERSE_ROLES


def current_scope() -> Scope:
    """The signed-in user's scope, for a view that ``@allow`` has let through (so a user is signed in;
    ``g.user`` is set by dashboard.auth)."""
    user: User | None = g.get("user")
    assert user is not None
    return Scope(user)
