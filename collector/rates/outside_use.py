"""Use of the classroom PCs outside lessons (课外使用; the rule 不得允许学生单独使用).

Computed with the day's rollup (collector.rates.usage_rollup, from the same in-use intervals as the
lessons: collector.lessons.attribution.in_use_intervals; collector.lessons.lesson_place.outside_lessons) and stored
per device and school day in ``outside_use`` (a stale day is computed in memory: reads never
write). Read here by pages, the API and the alert rule.
"""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from collector.db import Database
from collector.devices.registry import school_tz
from collector.rates import usage_rollup


def _row(r: dict[str, Any], tz: Any) -> dict[str, Any]:
    def hhmm(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%H:%M")
    spans = json.loads(r["spans"])
    return {"date": r["date"], "device": r["device"], "class": r["class"], "minutes": round(r["seconds"] / 60.0, 1),
            "spans": [{"start": hhmm(a), "end": hhmm(b), "minutes": round((b - a) / 60.0, 1)} for a, b in spans]}


def day_rows(db: Database, school: str, day: date, now: float | None = None) -> list[dict[str, Any]]:
    """Every device's use outside lessons on one date (devices with none are left out), by device."""
    tz = school_tz(db, school)
    return [_row(r, tz) for r in usage_rollup.outside_rows(db, school, day, day, now)]


def device_rows(db: Database, school: str, device: str, last: date, days: int = 7,
                now: float | None = None) -> list[dict[str, Any]]:
    """One device's use outside lessons over the ``days`` days up to ``last``, newest first."""
    first = last - timedelta(days=days - 1)
    tz = school_tz(db, school)
    return [_row(r, tz) for r in reversed(usage_rollup.outside_rows(db, school, first, last, now, device))]
