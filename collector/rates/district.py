"""The bureau's view (区县教育局): every school side by side for one ISO week.

Per school: PCs known and online now, lessons scheduled and used in the week with the usage
rate (from collector.rates.usage, so the figures are the schools' own, frozen ones for published
weeks), classes and teachers below the school's threshold, faults open now and faults raised
in the week. Each query is scoped by school; the caller decides which schools a user may see.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from collector.db import Database
from collector.devices import registry
from collector.lessons.school_calendar import week_days
from collector.rates import usage


def all_schools(db: Database) -> list[str]:
    rows = db.query("SELECT school FROM schools UNION SELECT DISTINCT school FROM devices")
    return sorted(r["school"] for r in rows)


def week_bounds(db: Database, school: str, week: str) -> tuple[float, float]:
    """The week's start and end in epoch seconds, in the school's time zone."""
    days = week_days(week)
    tz = registry.school_tz(db, school)
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=tz)
    return start.timestamp(), (start + timedelta(days=7)).timestamp()


def school_row(db: Database, school: str, week: str, now: float) -> dict[str, Any]:
    names = db.query("SELECT name FROM schools WHERE school = ?", (school,))
    devices = registry.list_devices(db, school, now)
    classes = usage.week_rates(db, school, week, "class", now)
    teachers = usage.week_rates(db, school, week, "teacher", now)
    scheduled = sum(int(r["scheduled"]) for r in classes)
    used = sum(int(r["used"]) for r in classes)
    lo, hi = week_bounds(db, school, week)
    faults_week = db.query("SELECT COUNT(*) AS n FROM faults WHERE school = ? AND opened_t >= ? AND opened_t < ?",
                           (school, lo, hi))[0]["n"]
    faults_open = db.query("SELECT COUNT(*) AS n FROM faults WHERE school = ? AND cleared_t IS NULL",
                           (school,))[0]["n"]
    return {
        "school": school, "name": (names[0]["name"] if names else None) or school,
        "devices": len(devices), "online": sum(1 for d in devices if d["online"]),
        "scheduled": scheduled, "used": used, "rate": used / scheduled if scheduled else None,
        "classes_below": sum(1 for r in classes if r["below_threshold"]),
        "teachers_below": sum(1 for r in teachers if r["below_threshold"]),
        "faults_open": int(faults_open), "faults_week": int(faults_week),
    }


def compare_schools(db: Database, week: str, schools: list[str] | None = None,
                    now: float | None = None) -> list[dict[str, Any]]:
    """One row per school (all schools when ``schools`` is None), ordered by school id."""
    week_days(week)  # ValueError for a malformed week, before any work
    now = time.time() if now is None else now
    wanted = all_schools(db) if schools is None else sorted(schools)
    return [school_row(db, s, week, now) for s in wanted]
