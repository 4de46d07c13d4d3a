"""The bbt dashboard: a Flask app over the collector's store, one blueprint per area."""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from collector import migrations
from collector.db import Database, connect

csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """Session cookies are Secure whenever the request came over TLS (or SESSION_COOKIE_SECURE says so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (bool(request) and request.is_secure)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. Config keys: BBT_DB (store URL), SECRET_KEY, BROKER, PASSWORD_MAX_DAYS,
    TRUST_PROXY (honour X-Forwarded-Proto from a TLS-terminating proxy), plus Flask's own."""
    app = Flask(__name__)
    app.config.update(
        BBT_DB=None,
        SECRET_KEY=os.environ.get("BBT_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_NAME="bbt_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=os.environ.get("BBT_SECURE_COOKIES", "") == "1",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        PASSWORD_MAX_DAYS=float(os.environ.get("BBT_PASSWORD_MAX_DAYS", "180")),
        TRUST_PROXY=os.environ.get("BBT_TRUST_PROXY", "") == "1",
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=10 * 1024 * 1024,
        JSON_AS_ASCII=False,
    )
    app.config.update(config or {})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.session_interface = SessionInterface()
    if app.config["TRUST_PROXY"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    db = connect(app.config["BBT_DB"])
    migrations.migrate(db)
    app.extensions["bbt_db"] = db
    csrf.init_app(app)

    from dashboard import (  # noqa: F401  (their routes are on the admin blueprint)
        access,
        admin,
        admin_imports,
        admin_policy,
        admin_routing,
        agent_updates,
        alert_views,
        api,
        assets,
        auth,
        devices,
        district,
        enrol,
        faults,
        i18n,
        openapi,
        overview,
        power,
        stocktakes,
        usage_pages,
        web,
    )

    i18n.init_app(app)
    for bp in (auth.bp, overview.bp, usage_pages.bp, devices.bp, faults.bp, admin.bp, api.bp, openapi.bp,
               alert_views.bp, district.bp, enrol.bp, assets.bp, stocktakes.bp, power.bp, agent_updates.bp):
        app.register_blueprint(bp)
    csrf.exempt(api.bp)
    csrf.exempt(enrol.bp)  # the agents' POST: the enrolment secret is the credential
    csrf.exempt(district.bp)  # GET only
    app.before_request(auth.load_user)
    app.before_request(access.enforce)
    web.init_app(app)
    return app


def get_db() -> Database:
    from flask import current_app

    db: Database = current_app.extensions["bbt_db"]
    g.setdefault("db", db)
    return db
