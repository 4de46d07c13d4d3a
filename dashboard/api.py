"""JSON API under /api/v1 (protocol.md §4). A role sees only what it may; anything else is 403."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from alerts import config as alert_config
from collector.devices import projectors, registry
from collector.intake import protection
from dashboard import devstate, get_db
from dashboard.access import ANY_USER, DEVICE_ROLES, Scope, allow, current_scope

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def resolve_school(s: Scope | None = None) -> str:
    """The ``school`` query parameter, checked against what the user may see (400/403 otherwise)."""
    return (s or current_scope()).school(request.args.get("school"))


@bp.get("/devices")
@allow(*DEVICE_ROLES, "class_teacher")
def devices() -> Any:
    s = current_scope()
    school = resolve_school(s)
    db = get_db()
    rows = registry.list_devices(db, school)
    rows = devstate.with_states([r for r in rows if s.sees_device_of_class(r["class"])])
    prot = protection.summaries(db, school, alert_config.load(db, school)["rules"]["protection"])
    for r in rows:  # protocol 1.2 (an extra key): null until the device reports
        r["protection"] = prot.get(r["device"])
    return jsonify(rows)


@bp.get("/projectors")
@allow(*DEVICE_ROLES, "class_teacher")
def projector_list() -> Any:
    """The latest PJLink state of each projector the user may see (docs/collector.md)."""
    s = current_scope()
    school = resolve_school(s)
    db = get_db()
    classes = {r["device"]: r["class"] for r in registry.list_devices(db, school)}
    return jsonify([p for p in projectors.school_projectors(db, school)
                    if s.sees_device_of_class(classes.get(p["device"]))])


@bp.get("/stats/ingest")
@allow(*DEVICE_ROLES)
def stats_ingest() -> Any:
    return jsonify(registry.ingest_stats(get_db()))


@bp.get("/me")
@allow(*ANY_USER)
def me() -> Any:
    u = current_scope().user
    return jsonify({"name": u.name, "role": u.role, "school": u.school, "class": u.klass})



# their routes are on bp: usage/teachers, usage/classes, lessons; lesson-marks, usage/outside
from dashboard import api_lessons, api_usage  # noqa: E402,F401
