"""Marking school days whose usage must be recomputed (cheap; called inside ingest transactions)."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Iterable
from zoneinfo import ZoneInfo

from collector.db import Database

USAGE_EVENT_TYPES = ("session", "heartbeat", "power", "fault")
MARK = ("INSERT INTO usage_days (school, date, dirty) VALUES (?, ?, 1) "
        "ON CONFLICT (school, date) DO UPDATE SET dirty = usage_days.dirty + 1")
_tz_cache: dict[str, ZoneInfo] = {}
WHOLE_MINUTE_OFFSETS = 1e8  # 1973-03-03: from then on every time zone's UTC offset is whole minutes


def _tz(db: Database, school: str) -> ZoneInfo:
    tz = _tz_cache.get(school)
    if tz is None:
        rows = db.query("SELECT tz FROM schools WHERE school = ?", (school,))
        tz = ZoneInfo(rows[0]["tz"] if rows else "Asia/Shanghai")
        if rows:
            _tz_cache[school] = tz
    return tz


def mark_events(db: Database, school: str, items: Iterable[tuple[str, float]]) -> None:
    """Mark the local dates of (event type, time) pairs of one school as needing recomputation."""
    times = [t for typ, t in items if typ in USAGE_EVENT_TYPES]
    if not times:
        return
    tz = _tz(db, school)
    # a local date changes only on a whole UTC minute where every offset in force is whole minutes (since
    # 1973 everywhere): one date per minute, computed once; earlier times one by one
    stamps = {int(t // 60) * 60 if t >= WHOLE_MINUTE_OFFSETS else t for t in times}
    dates = {datetime.fromtimestamp(t, tz).date().isoformat() for t in stamps}
    db.executemany(MARK, [(school, d) for d in sorted(dates)])


def mark_dates(db: Database, school: str, dates: Iterable[str]) -> None:
    """Mark given dates (YYYY-MM-DD) dirty, e.g. after a person registered a fault for them."""
    db.executemany(MARK, [(school, d) for d in sorted(set(dates))])


def invalidate_school(db: Database, school: str) -> None:
    """The school model changed (import, settings): every computed day is stale (computed in memory by
    reads, stored again by the job) and the school's usage version changes (a fresh random token: it
    keys days computed in memory, also days never stored). Published weeks are unaffected (they are
    frozen in usage_published)."""
    db.execute("UPDATE usage_days SET dirty = dirty + 1 WHERE school = ?", (school,))
    db.execute("UPDATE schools SET usage_version = ? WHERE school = ?", (uuid.uuid4().hex, school))
