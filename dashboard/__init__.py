"""The bbt dashboard: a Flask app over the collector's store."""
from __future__ import annotations

import os
import secrets
from typing import Any

from flask import Flask, g
from flask_wtf.csrf import CSRFProtect

from collector import migrations
from collector.db import Database, connect

csrf = CSRFProtect()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app. Config keys: BBT_DB (store URL), SECRET_KEY, HEARTBEAT_S, plus Flask's own."""
    app = Flask(__name__)
    app.config.update(
        BBT_DB=None,
        SECRET_KEY=os.environ.get("BBT_SECRET_KEY") or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_AS_ASCII=False,
    )
    app.config.update(config or {})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    db = connect(app.config["BBT_DB"])
    migrations.migrate(db)
    app.extensions["bbt_db"] = db
    csrf.init_app(app)

    from dashboard import api, auth, pages

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    app.before_request(auth.load_user)

    @app.after_request
    def security_headers(resp: Any) -> Any:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        return resp

    return app


def get_db() -> Database:
    from flask import current_app

    db: Database = current_app.extensions["bbt_db"]
    g.setdefault("db", db)
    return db
