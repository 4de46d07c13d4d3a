"""/api/v1/openapi.json: the API described as OpenAPI 3.0 (schemathesis checks the server against it)."""
from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, current_app, jsonify

from collector.lessons.attribution import REVIEWS
from dashboard.access import PUBLIC, allow

bp = Blueprint("openapi", __name__)

SCHOOL = {"name": "school", "in": "query", "required": True,
          "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}}
WEEK = {"name": "week", "in": "query", "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{4}-W[0-9]{2}$"}, "example": "2026-W48"}
DATE = {"name": "date", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}}
ERR = {"$ref": "#/components/schemas/Error"}
TERM = [{"name": "term", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
         "description": "a day of the school term to cover"},
        {"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}},
        {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"}}]
RANGE = [{"name": "from", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
          "description": "first day of a date range (with to), instead of week"},
         {"name": "to", "in": "query", "required": False, "schema": {"type": "string", "format": "date"},
          "description": "last day of the range, included"}]
MONTH = {"name": "month", "in": "query", "required": False, "description": "a month instead of week",
         "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}, "example": "2026-11"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _op(summary: str, params: list[dict[str, Any]], item: dict[str, Any], array: bool = True,
        media: str = "application/json") -> dict[str, Any]:
    schema = {"type": "array", "items": item} if array else item
    return {"get": {
        "summary": summary, "parameters": params, "security": [{"bearer": []}],
        "responses": {
            "200": {"description": "OK", "content": {media: {"schema": schema}}},
            "400": {"description": "bad parameter", "content": {"application/json": {"schema": ERR}}},
            "401": {"description": "no or bad token", "content": {"application/json": {"schema": ERR}}},
            "403": {"description": "not allowed for this role", "content": {"application/json": {"schema": ERR}}},
        }}}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or list(props)}


S, N, B, INT = {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "integer"}
NS = {"type": "string", "nullable": True}
RATE = {"type": "number", "minimum": 0, "maximum": 1}

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/devices": _op("Every device the collector has heard from or imported", [SCHOOL], _obj(
        {"device": S, "class": NS, "online": B, "in_use": B, "last_seen": NS,
         "open_faults": {"type": "array", "items": S},
         "state": {"type": "string", "enum": ["in_use", "idle", "off", "offline", "fault"]},
         "protection": dict(_obj({"enabled": B, "reported": S, "problems": {"type": "array", "items": {
             "type": "string", "enum": ["virus", "av_off", "av_outdated", "patches_pending"]}}}), nullable=True)})),
    "/api/v1/projectors": _op("The latest PJLink state of each classroom projector (docs/collector.md)", [SCHOOL], _obj(
        {"device": S, "address": S, "reachable": B, "power": NS, "input": NS,
         "lamp_hours": {"type": "number", "nullable": True}, "errors": {"type": "object"}, "error": NS, "t": N})),
    "/api/v1/stats/ingest": _op("Ingest counters since the store was created", [], _obj(
        {"stored": INT, "duplicates": INT, "rejected": INT, "gaps": INT}), array=False),
    "/api/v1/me": _op("The caller", [], _obj({"name": S, "role": S, "school": NS, "class": NS}), array=False),
    "/api/v1/usage/teachers": _op("Teachers' weekly usage rates", [SCHOOL, WEEK], _obj(
        {"teacher": S, "scheduled": INT, "used": INT, "rate": RATE, "below_threshold": B, "excluded": INT,
         "awaiting_review": INT})),
    "/api/v1/usage/classes": _op("Classes' weekly usage rates", [SCHOOL, WEEK], _obj(
        {"class": S, "scheduled": INT, "used": INT, "rate": RATE, "below_threshold": B, "excluded": INT,
         "awaiting_review": INT})),
    "/api/v1/lessons": _op("One row per scheduled lesson of a day", [SCHOOL, DATE], _obj(
        {"class": S, "period": INT, "teacher": S, "subject": NS, "start": S, "end": S, "in_use_minutes": N,
         "used": B}, ["class", "period", "teacher", "start", "end", "in_use_minutes", "used"])),
    "/api/v1/lesson-marks": _op("Lessons marked 外出上课 (away) or 调课 (swapped); POST marks one, "
                                "POST /api/v1/lesson-marks/{id}/reverse reverses one (headteacher, admin)", [
        SCHOOL, dict(DATE, required=False)], _obj(
        {"id": INT, "school": S, "date": S, "class": S, "period": INT, "teacher": S,
         "kind": {"type": "string", "enum": ["away", "swapped"]}, "kind_zh": S, "reason": S, "marked_by": S,
         "marked": N, "reversed_by": NS, "reversed": {"type": "number", "nullable": True}, "reverse_reason": NS,
         "active": B})),
    "/api/v1/usage/outside": _op("Use of each classroom PC outside lessons on a school day (课外使用)", [
        SCHOOL, dict(DATE, required=False)], _obj(
        {"date": S, "device": S, "class": NS, "minutes": N, "spans": {"type": "array", "items": _obj(
            {"start": S, "end": S, "minutes": N})}})),
    "/api/v1/usage/report": _op("The report of a week, a month or a date range (school-wide roles); "
                                "format=html|csv|xlsx give a document (lang=en: CSV with English headers)", [
        SCHOOL, {**WEEK, "required": False}, MONTH, *RANGE, {"name": "format", "in": "query", "required": False,
                       "schema": {"type": "string", "enum": ["json"]}}], _obj(
        {"school": S, "start": S, "end": S, "threshold": N, "teachers": {"type": "array", "items": {"type": "object"}},
         "classes": {"type": "array", "items": {"type": "object"}},
         "lessons": {"type": "array", "items": {"type": "object"}}}), array=False),
    "/api/v1/usage/trend": _op("Weekly rates over the last weeks", [
        SCHOOL, WEEK, {"name": "by", "in": "query", "required": False,
                       "schema": {"type": "string", "enum": ["teacher", "class"]}},
        {"name": "weeks", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1,
                                                                         "maximum": 30}}],
        _obj({"weeks": {"type": "array", "items": S}, "rows": {"type": "object", "additionalProperties": {
            "type": "array", "items": {"type": "number", "nullable": True}}}}), array=False),
    "/api/v1/alerts": _op("Alerts", [SCHOOL, {"name": "state", "in": "query", "required": False, "schema": {
        "type": "string", "enum": ["open", "firing", "acknowledged", "resolved", "all"]}}], _obj(
        {"id": INT, "kind": S, "severity": S, "device": NS, "opened": S, "acked_by": NS, "state": S})),
    "/api/v1/faults": _op("The fault register (故障登记簿): one ticket per fault, with its review (待核实 / 影响上课 / "
                          "误报)", [SCHOOL, *TERM, {
        "name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": ["open", "all"]}}, {
        "name": "review", "in": "query", "required": False, "schema": {"type": "string", "enum": list(REVIEWS)}}],
        _obj({"id": INT, "device": S, "class": NS, "code": S, "title": S, "severity": S, "reporter": S,
              "reported": S, "opened": S, "cleared": NS, "review": {"type": "string", "enum": list(REVIEWS)},
              "review_from": NS, "review_to": NS, "reviewed_by": NS, "cause": NS, "handling": NS,
              "repair_record": NS, "parts": NS, "acked_by": NS, "closed": NS},
             ["id", "device", "code", "opened", "cleared", "review", "severity", "reporter", "reported"])),
    "/api/v1/faults/{ticket_id}/review": {"post": {
        "summary": "Review a register entry (maintainer or admin): confirmed = affects teaching (影响上课) for "
                   "[from, to] (default: opening to clearing), rejected = false report (误报)",
        "security": [{"bearer": []}],
        "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": INT}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["review"], "additionalProperties": False, "properties": {
                "review": {"type": "string", "enum": ["confirmed", "rejected"]},
                "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"}}}}}},
        "responses": {
            "200": {"description": "the entry, reviewed", "content": {"application/json": {"schema": {
                "type": "object", "required": ["id", "review"]}}}},
            "400": {"description": "bad body (the message names the problem)",
                    "content": {"application/json": {"schema": ERR}}},
            "401": {"description": "no or bad token", "content": {"application/json": {"schema": ERR}}},
            "403": {"description": "not a maintainer or admin", "content": {"application/json": {"schema": ERR}}},
            "404": {"description": "no such entry", "content": {"application/json": {"schema": ERR}}},
        }}},
    "/api/v1/faults/stats": _op("Mean time to acknowledge / repair (minutes), faults per device", [SCHOOL, *TERM],
                                _obj({"tickets": INT, "open": INT, "mtta_min": {"type": "number", "nullable": True},
                                      "mttr_min": {"type": "number", "nullable": True},
                                      "per_device": {"type": "object", "additionalProperties": INT}}), array=False),
    "/api/v1/faults.xlsx": _op("The fault register as an XLSX workbook", [SCHOOL, *TERM],
                               {"type": "string", "format": "binary"}, array=False, media=XLSX),
    "/api/v1/district/schools": _op("Every school side by side for a week (bureau; an admin of one school: "
                                    "that school)", [WEEK], _obj(
        {"school": S, "name": S, "devices": INT, "online": INT, "scheduled": INT, "used": INT,
         "rate": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True}, "classes_below": INT,
         "teachers_below": INT, "faults_open": INT, "faults_week": INT})),
}


def _enrol_op() -> dict[str, Any]:
    """POST /api/v1/enrol (collector.intake.enrolment, common.enrolwire): public; the school's secret is the
    credential."""
    err = {"content": {"application/json": {"schema": ERR}}}
    ID = SCHOOL["schema"]  # noqa: N806 (the contract's id rule)
    return {"post": {
        "summary": "A classroom PC enrols with the school's enrolment secret (HMAC proof; docs/security.md)",
        "security": [],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _obj(
            {"school": ID, "device": ID, "nonce": {"type": "string", "minLength": 16, "maxLength": 128},
             "proof": {"type": "string", "pattern": "^[0-9a-f]{64}$"}})}}},
        "responses": {
            "200": {"description": "enrolled: the PC's MQTT account and the school's command-signing key",
                    "content": {"application/json": {"schema": _obj(
                        {"school": S, "device": S, "nonce": S, "username": S, "password": S, "command_key": S,
                         "ca": {"type": "string", "nullable": True}, "mac": S})}}},
            "400": {"description": "malformed request", **err},
            "403": {"description": "no, expired or wrong secret", **err},
            "409": {"description": "the device id is enrolled or revoked", **err},
            "429": {"description": "too many refused enrolments from this address", **err},
        }}}


PATHS["/api/v1/enrol"] = _enrol_op()


def spec() -> dict[str, Any]:
    """Only the paths this app actually serves (areas land one by one)."""
    served = {re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", r.rule) for r in current_app.url_map.iter_rules()}
    return {
        "openapi": "3.0.3",
        "info": {"title": "bbt API", "version": "1",
                 "description": "班班通监控 API (protocol.md §4). Authenticate with `Authorization: Bearer <token>` "
                                "from `bbt token create --user NAME`."},
        "servers": [{"url": "/"}],
        "paths": {p: v for p, v in PATHS.items() if p in served},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": _obj({"error": S, "message": S}, ["error"])},
        },
    }


@bp.get("/api/v1/openapi.json")
@allow(PUBLIC)
def openapi() -> Any:
    return jsonify(spec())
