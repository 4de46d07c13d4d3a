"""The demo school's imported bell schedule and timetable agree with what its simulated PCs do,
and a simulated day gives sensible rates (the same plan the `bbt demo` simulation plays)."""
from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import protocol
from bbt import demo
from bbt.demo_run import demo_days, prepare
from bbt.sim import SimDevice, plan_day
from collector import usage
from collector.db import connect
from collector.school_calendar import iso_week
from tests.usage_script import DeviceScript, ingest


class Recorder(SimDevice):
    """A simulated PC that writes its events down instead of publishing them."""

    def __init__(self, device: str) -> None:
        super().__init__(demo.SCHOOL, device, None, None)  # type: ignore[arg-type]
        self.script = DeviceScript(device)

    def _event(self, etype: str, data: dict[str, Any], when: datetime) -> None:
        self.script.events.append(protocol.make_event(f"{self.device}-{self.seq}", self.seq, etype, when, data))
        self.seq += 1

    def power_on(self, when: datetime) -> None:
        self.on, self.boot_time = True, when
        self._event("power", {"state": "on", "boot_time": protocol.format_time(when), "clean": True}, when)
        self.heartbeat(when)

    def power_off(self, when: datetime) -> None:
        self.session_end(when)
        self._event("power", {"state": "off"}, when)
        self.on = False


def test_demo_day_rates(tmp_path: Path) -> None:
    days = demo_days(date(2026, 11, 23))
    assert days == [date(2026, 11, 16) + timedelta(days=i) for i in range(5)]
    assert demo_days(date(2026, 10, 8))[-1] == date(2026, 9, 30)  # National Day week skipped
    db_path, _, school = prepare(tmp_path / "demo", days)
    db = connect(db_path)
    day = days[2]
    rng = random.Random(5)
    start = datetime(day.year, day.month, day.day, 7, 0, tzinfo=ZoneInfo(demo.TZ))
    sessions = 0
    recorders = []
    for d in school.devices:
        rec = Recorder(d["device"])
        for when, action, _ in plan_day(rng, start, school.lessons_for(d["device"], day), heartbeat_s=300).steps:
            getattr(rec, action)(when)
        sessions += sum(1 for e in rec.script.events if e["type"] == "session" and e["data"]["state"] == "start")
        recorders.append(rec.script)
    ingest(db, demo.SCHOOL, recorders)
    lessons = usage.day_lessons(db, demo.SCHOOL, day)
    planned = sum(len(school.lessons_for(d["device"], day)) for d in school.devices)
    assert len(lessons) == planned > 200 and {r["status"] for r in lessons} <= {"used", "not_used"}
    assert sum(r["used"] for r in lessons) == sessions  # every simulated session falls in its lesson
    rates = usage.range_rates(db, demo.SCHOOL, day, day, "teacher")
    overall = sum(r["used"] for r in rates) / sum(r["scheduled"] for r in rates)
    assert 0.55 < overall < 0.9
    assert any(r["below_threshold"] for r in rates) and not all(r["below_threshold"] for r in rates)
    week = usage.week_rates(db, demo.SCHOOL, iso_week(day), "class")
    per_week = sum(demo.SUBJECTS[s][0] for s in demo.SUBJECTS)
    assert len(week) == 36 and all(r["scheduled"] == per_week for r in week)  # the term: the simulated days
    db.close()
