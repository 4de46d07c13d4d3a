"""Retention and personal-data purges, each written to the audit log.

- Raw heartbeats are kept ``days`` days (lessons, sessions, faults and reports are kept for years).
- ``purge_teacher`` destroys the personal data of a teacher who left (学校规定：不再需要的个人信息应予销毁):
  the login and its tokens are deleted, and the name is replaced everywhere it appears (timetable,
  substitutions, lessons, alerts acknowledged, fault register, ...) by one random pseudonym, so past
  reports keep their counts but no longer name the person. The audit entry names the pseudonym,
  never the person.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

from collector.audit import audit
from collector.db import Database
from common.errors import BbtError

HEARTBEAT_DAYS = 400
# columns that hold a person's name, in any area's tables (found by introspection)
NAME_COLUMNS = ("teacher", "teacher_name", "substitute", "acked_by", "reported_by", "created_by",
                "registered_by", "closed_by", "resolved_by", "assigned_to", "actor", "user_name", "name",
                "marked_by", "reversed_by")
NAME_TABLES_FOR_NAME = ("users",)  # a plain "name" column is a person only in these


class PurgeError(BbtError):
    pass


def purge_heartbeats(db: Database, days: float = HEARTBEAT_DAYS, now: float | None = None,
                     who: str | None = None) -> int:
    """Delete heartbeat events older than ``days``; return how many. One transaction per device."""
    if days < 1:
        raise PurgeError("heartbeats must be kept at least 1 day")
    cutoff = (now or time.time()) - days * 86400
    total = 0
    for d in db.query("SELECT school, device FROM devices ORDER BY school, device"):
        with db.transaction():
            total += db.execute("DELETE FROM events WHERE school = ? AND device = ? AND type = 'heartbeat' "
                                "AND t < ?", (d["school"], d["device"], cutoff))
    with db.transaction():
        audit(db, "retention_heartbeats", None, {"days": days, "cutoff": cutoff, "deleted": total}, who, now)
    return total


def table_columns(db: Database) -> dict[str, set[str]]:
    if db.dialect == "sqlite":
        tables = [r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table' "
                                              "AND name NOT LIKE 'sqlite_%'")]
        return {t: {r["name"] for r in db.query(f'PRAGMA table_info("{t}")')} for t in tables}
    out: dict[str, set[str]] = {}
    for r in db.query("SELECT table_name, column_name FROM information_schema.columns "
                      "WHERE table_schema = current_schema()"):
        out.setdefault(r["table_name"], set()).add(r["column_name"])
    return out


def purge_teacher(db: Database, name: str, school: str | None = None, who: str | None = None,
                  now: float | None = None) -> dict[str, Any]:
    """Destroy a departed teacher's personal data; return what was done (also in the audit log)."""
    name = name.strip()
    if not name:
        raise PurgeError("give the teacher's name as it appears in the timetable")
    pseudonym = "已离职教师-" + secrets.token_hex(3)
    done: dict[str, int] = {}
    with db.transaction():
        cols = table_columns(db)
        if "tokens" in cols:
            done["tokens.deleted"] = db.execute("DELETE FROM tokens WHERE user_name = ?", (name,))
        if "users" in cols:
            where, params = "name = ?", [name]
            if school and "school" in cols["users"]:
                where += " AND (school = ? OR school IS NULL)"
                params.append(school)
            done["users.deleted"] = db.execute(f"DELETE FROM users WHERE {where}", params)
        for table, columns in sorted(cols.items()):
            if table in ("tokens", "users", "schema_migrations"):
                continue
            for col in NAME_COLUMNS:
                if col not in columns or (col == "name" and table not in NAME_TABLES_FOR_NAME):
                    continue
                where, params = f'"{col}" = ?', [pseudonym, name]
                if school and "school" in columns:
                    where += " AND school = ?"
                    params.append(school)
                n = db.execute(f'UPDATE "{table}" SET "{col}" = ? WHERE {where}', params)
                if n:
                    done[f"{table}.{col}"] = n
        if "usage_published" in cols:
            from collector.rates.usage_report import pseudonymize

            n = pseudonymize(db, name, pseudonym, school)
            if n:
                done["usage_published+usage_patrols (JSON)"] = n
        if not any(done.values()):
            raise PurgeError(f"no personal data of {name!r} found{' in ' + school if school else ''}; nothing changed")
        audit(db, "purge_teacher", pseudonym, {"school": school, "rows": done}, who, now)
    return {"pseudonym": pseudonym, "rows": done}
