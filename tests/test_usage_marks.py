"""collector/lessons/usage_marks.py computes a local date once per UTC minute: exact only because every time zone's
offset has been whole minutes since WHOLE_MINUTE_OFFSETS (and its changes fall on whole minutes). Checked on
this machine's time zone database, and on the marks themselves around midnights and clock changes."""
from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from collector.lessons.usage_marks import WHOLE_MINUTE_OFFSETS, mark_events

# zones with half and quarter hours, midnight clock changes (Sao Paulo), a change at 00:01 (St Johns until 2011)
ZONES = ("Asia/Shanghai", "Asia/Kathmandu", "Asia/Kolkata", "America/St_Johns", "America/Sao_Paulo",
         "Australia/Lord_Howe", "Pacific/Chatham", "Africa/Monrovia")


def test_every_offset_since_the_cut_is_whole_minutes() -> None:
    start = datetime.fromtimestamp(WHOLE_MINUTE_OFFSETS, UTC)
    for name in sorted(zoneinfo.available_timezones()):
        tz = zoneinfo.ZoneInfo(name)
        t = start
        while t.year < 2040:
            offset = t.astimezone(tz).utcoffset()
            assert offset is not None and offset.total_seconds() % 60 == 0, (name, t)
            t += timedelta(days=61)


def marked(db: Any, school: str) -> set[str]:
    return {r["date"] for r in db.query("SELECT date FROM usage_days WHERE school = ?", (school,))}


def test_marks_are_the_local_dates_of_each_time(db: Any) -> None:
    for i, name in enumerate(ZONES):
        school = f"z{i}"
        db.execute("INSERT INTO schools (school, tz) VALUES (?, ?)", (school, name))
        tz = zoneinfo.ZoneInfo(name)
        times = []
        for year in (1960, 1972, 2008, 2010, 2018, 2026):  # before and after the cut, around clock changes
            for month in (1, 3, 4, 10, 11):
                for day in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25,
                            26, 27, 28):
                    midnight = datetime(year, month, day, tzinfo=tz).timestamp()
                    times += [midnight + d for d in (-3601, -61, -1, 0, 59.5, 60, 3599, 3600)]
        with db.transaction():
            mark_events(db, school, [("heartbeat", t) for t in times] + [("usb", times[0] - 86400 * 5)])
        assert marked(db, school) == {datetime.fromtimestamp(t, tz).date().isoformat() for t in times}, name
