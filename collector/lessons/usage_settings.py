"""Per-school usage settings, kept in schools.settings (JSON) next to other areas' keys.

| key | default | meaning |
|---|---|---|
| min_use_minutes | 10 | in-use minutes inside a lesson for it to count as used |
| threshold | 0.60 | the rate a teacher or class must reach each week |
| exclude_faulty | true | leave lessons during a confirmed fault (影响上课) out of the denominator |
| heartbeat_s | 60 | the agents' heartbeat interval (in-use heartbeat runs break after 2×) |
| publish_weekly | "7 20:00" | when the week is published: ISO weekday and HH:MM; null = by hand only |
| patrol_after_minutes | 15 | minutes after the day's last lesson the patrol record is made |
| not_in_classroom_subjects | [] | subjects not taught on the classroom PC (体育, 实验 ...): left out |
"""
from __future__ import annotations

import json
import re
from typing import Any

from collector.db import Database
from collector.devices.registry import ensure_school
from collector.lessons.usage_marks import invalidate_school
from common.errors import BbtError

DEFAULTS: dict[str, Any] = {"min_use_minutes": 10.0, "threshold": 0.6, "exclude_faulty": True, "heartbeat_s": 60.0,
                            "publish_weekly": "7 20:00", "patrol_after_minutes": 15.0,
                            "not_in_classroom_subjects": []}
LIST_SEPARATORS = re.compile(r"[,，、;；\n]+")


class SettingsError(BbtError, ValueError):
    pass


def parse_value(key: str, raw: str) -> Any:
    """Validate one setting given as text; raises SettingsError naming the key."""
    if key not in DEFAULTS:
        raise SettingsError(f"unknown usage setting {key!r}; one of {', '.join(DEFAULTS)}")
    if key == "exclude_faulty":
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SettingsError(f"{key} must be true or false, not {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    if key == "not_in_classroom_subjects":
        items = [x.strip() for x in LIST_SEPARATORS.split(raw) if x.strip()]
        if any(len(x) > 40 for x in items):
            raise SettingsError(f"{key}: a subject is longer than 40 characters in {raw!r}")
        return list(dict.fromkeys(items))
    if key == "publish_weekly":
        if raw.lower() in ("", "null", "none", "off"):
            return None
        if not re.fullmatch(r"[1-7] ([01]?\d|2[0-3]):[0-5]\d", raw):
            raise SettingsError(f"{key} must be 'WEEKDAY HH:MM' (weekday 1-7, e.g. '7 20:00') or off, not {raw!r}")
        return raw
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key} must be a number, not {raw!r}") from None
    limits = {"threshold": (0.0, 1.0), "min_use_minutes": (0.0, 600.0), "heartbeat_s": (5.0, 3600.0),
              "patrol_after_minutes": (0.0, 1440.0)}[key]
    if not limits[0] <= value <= limits[1]:
        raise SettingsError(f"{key} must be between {limits[0]:g} and {limits[1]:g}, not {raw}")
    return value


def get(db: Database, school: str) -> dict[str, Any]:
    rows = db.query("SELECT settings FROM schools WHERE school = ?", (school,))
    stored = json.loads(rows[0]["settings"]) if rows else {}
    return {k: stored.get(k, v) for k, v in DEFAULTS.items()}


def update(db: Database, school: str, changes: dict[str, str]) -> dict[str, Any]:
    """Set usage settings (validated first, applied together); computed days are recomputed."""
    parsed = {k: parse_value(k, v) for k, v in changes.items()}
    with db.transaction():
        ensure_school(db, school)
        rows = db.query("SELECT settings FROM schools WHERE school = ?", (school,))
        stored = json.loads(rows[0]["settings"] or "{}")
        stored.update(parsed)
        db.execute("UPDATE schools SET settings = ? WHERE school = ?", (json.dumps(stored, ensure_ascii=False), school))
        invalidate_school(db, school)
    return get(db, school)
