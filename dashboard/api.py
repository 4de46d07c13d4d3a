"""JSON API under /api/v1 (CONTRACT §4)."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request

from collector import registry
from dashboard import get_db
from dashboard.auth import current_user, login_required

bp = Blueprint("api", __name__, url_prefix="/api/v1")

SCHOOL_WIDE = ("admin", "headteacher", "maintainer")


def resolve_school() -> str:
    """The school asked for, checked against what the user may see (400/403 otherwise)."""
    user = current_user()
    assert user is not None
    school = request.args.get("school") or user.school
    if not school:
        abort(400, description="missing query parameter: school")
    if not user.may_see_school(school):
        abort(403)
    return school


@bp.errorhandler(400)
@bp.errorhandler(403)
@bp.errorhandler(404)
def api_error(e: Any) -> Any:
    return jsonify(error=e.name.lower().replace(" ", "_"), message=e.description), e.code


@bp.get("/devices")
@login_required
def devices() -> Any:
    school = resolve_school()
    user = current_user()
    assert user is not None
    rows = registry.list_devices(get_db(), school)
    if user.role == "class_teacher":
        rows = [r for r in rows if r["class"] == user.klass]
    elif user.role not in SCHOOL_WIDE:
        abort(403)
    return jsonify(rows)


@bp.get("/stats/ingest")
@login_required
def stats_ingest() -> Any:
    user = current_user()
    if user is None or user.role not in ("admin", "headteacher", "maintainer"):
        abort(403)
    return jsonify(registry.ingest_stats(get_db()))
