"""What every page shares: navigation by role, error pages, security headers, CSRF for API writes."""
from __future__ import annotations

from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError

from collector import codes
from dashboard import csrf
from dashboard.access import may
from dashboard.i18n import select_locale

# (endpoint, label) in menu order; each shows only to the roles its view allows
NAV = [
    ("overview.index", _l("总览")),
    ("usage.teachers", _l("使用率")),
    ("devices.index", _l("设备")),
    ("power.index", _l("电源管理")),
    ("faults.index", _l("故障与告警")),
    ("faults.repair", _l("报修")),
    ("assets.index", _l("设备清单")),
    ("district.index", _l("各校对比")),
    ("admin.index", _l("管理")),
]

STATE_LABELS = {"in_use": _l("使用中"), "idle": _l("开机空闲"), "off": _l("已关机"), "offline": _l("离线"),
                "fault": _l("故障")}
SEVERITY_LABELS = {"info": _l("提示"), "warning": _l("警告"), "critical": _l("严重")}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def init_app(app: Flask) -> None:
    # browsers (and bookmarks, tabs of other programs) ask for /favicon.ico whatever the page links: the static file
    app.add_url_rule("/favicon.ico", endpoint="static", defaults={"filename": "favicon.ico"})
    @app.context_processor
    def navigation() -> dict[str, Any]:
        user = g.get("user")
        items = [(ep, label) for ep, label in NAV if ep in app.view_functions and may(user, ep)]

        def active(ep: str) -> bool:
            if request.endpoint == ep:
                return True
            return "faults.repair" not in (ep, request.endpoint) and request.blueprint == ep.split(".")[0]
        return {"nav": items, "nav_active": active, "can": lambda ep: ep in app.view_functions and may(user, ep),
                # translated once per request (lazy strings would look up the catalog at every use)
                "STATE_LABELS": {k: str(v) for k, v in STATE_LABELS.items()},
                "SEVERITY_LABELS": {k: str(v) for k, v in SEVERITY_LABELS.items()}}

    @app.context_processor
    def catalogue() -> dict[str, Any]:
        """Fault and alert names from the one catalogue (collector.codes), in the page's language."""
        lang = select_locale()
        return {"fault_label": lambda code: codes.fault_label(code, lang), "fault_entry": codes.fault,
                "alert_subject": lambda a: alert_subject(a, lang),
                "register_choices": codes.register_choices(lang)}

    @app.before_request
    def csrf_for_session_writes() -> None:
        """The API is CSRF-exempt for Bearer tokens; a browser session writing to it must send X-CSRFToken."""
        if request.path.startswith("/api/") and request.method not in ("GET", "HEAD", "OPTIONS") \
                and not g.get("via_token") and request.blueprint != "enrol":  # enrolment: no session, a secret
            csrf.protect()

    @app.after_request
    def security_headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        if request.is_secure:
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if g.get("user") is not None and not request.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def error(code: int, title: Any, message: str | None = None) -> Any:
        if request.path.startswith("/api/"):
            names = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                     413: "too_large", 429: "too_many_requests"}
            return jsonify(error=names.get(code, "error"), message=message or str(title)), code
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError) -> Any:
        return error(400, _l("表单已过期，请刷新页面后重试"), e.description)

    @app.errorhandler(400)
    def bad_request(e: Any) -> Any:
        return error(400, _l("请求有误"), e.description)

    @app.errorhandler(403)
    def forbidden(e: Any) -> Any:
        return error(403, _l("没有权限查看此页面"), None)

    @app.errorhandler(404)
    def not_found(e: Any) -> Any:
        return error(404, _l("找不到此页面"), None)

    @app.errorhandler(405)
    def not_allowed(e: Any) -> Any:
        return error(405, _l("不支持此操作"), None)

    @app.errorhandler(413)
    def too_large(e: Any) -> Any:
        return error(413, _l("文件太大"), None)


def alert_subject(a: Any, lang: str) -> str:
    """An alert's headline: its stored Chinese subject (with its numbers: 最后一节课后 45 分钟仍未关机);
    in English the catalogue's name of its fault code or kind."""
    if lang != "en":
        return str(a["subject"])
    return codes.alert_label(a["kind"], a.get("code"), "en")
