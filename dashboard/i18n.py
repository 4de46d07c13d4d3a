"""Languages: Chinese by default, English on request (flask-babel).

The choice comes from, in order: the session (set by the language switch), the ``bbt_lang``
cookie (remembered across logins), the browser's Accept-Language, else Chinese.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g, redirect, request, session
from flask_babel import Babel, get_translations

from dashboard.access import PUBLIC, allow

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT = "zh"
COOKIE = "bbt_lang"
bp = Blueprint("i18n", __name__)


def select_locale() -> str:
    for value in (session.get("lang"), request.cookies.get(COOKIE)):
        if value in LANGUAGES:
            return str(value)
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT


def _translations() -> Any:
    t = g.get("_bbt_translations")
    if t is None:
        t = g._bbt_translations = get_translations()
    return t


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    Babel(app, locale_selector=select_locale)
    # templates look the catalog up once per request, not at every string (flask-babel's default)
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda s: _translations().ugettext(s), lambda s, p, n: _translations().ungettext(s, p, n), newstyle=True)
    app.register_blueprint(bp)

    @app.context_processor
    def languages() -> dict[str, Any]:
        return {"languages": LANGUAGES, "current_lang": select_locale()}


@bp.get("/lang/<lang>")
@allow(PUBLIC)
def switch(lang: str) -> Any:
    """Switch the language and go back where the user was (only to a local path)."""
    if lang not in LANGUAGES:
        lang = DEFAULT
    session["lang"] = lang
    nxt = request.args.get("next") or "/"
    if not nxt.startswith("/") or nxt.startswith("//"):
        nxt = "/"
    resp = redirect(nxt)
    resp.set_cookie(COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax")
    return resp
