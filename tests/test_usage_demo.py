"""The demo school's imported bell schedule and timetable agree with what its simulated PCs do,
and a simulated day gives sensible rates (the same plan the `bbt demo` simulation plays)."""
from __future__ import annotations

import copy
import random
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import protocol
from bbt import demo, demo_story
from bbt.demo_run import demo_days, prepare
from bbt.sim import SimDevice, plan_day
from collector.db import Database, connect
from collector.lessons.school_calendar import iso_week
from collector.rates import usage
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


@dataclass
class Replayed:
    """The demo week replayed up to Thursday 10:30 once for the module (the slow part); each test works on a
    copy of the store and of the story."""

    now: datetime
    days: list[date]
    db_path: str
    school: demo.DemoSchool
    story: demo_story.Story
    progress: list[tuple[int, int]]

    def copy(self, folder: Path) -> tuple[Database, demo_story.Story]:
        path = str(folder / "demo.db")
        with closing(sqlite3.connect(self.db_path)) as src, closing(sqlite3.connect(path)) as dst:
            src.backup(dst)
        return connect(path), copy.deepcopy(self.story)


@pytest.fixture(scope="module")
def thursday(tmp_path_factory: pytest.TempPathFactory) -> Replayed:
    now = datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo(demo.TZ))
    days = demo_days(now.date())
    db_path, _, school = prepare(tmp_path_factory.mktemp("demo"), days)
    db = connect(db_path)
    progress: list[tuple[int, int]] = []
    story = demo_story.replay(db, school, days, now, lambda i, n: progress.append((i, n)))
    db.close()
    return Replayed(now, days, db_path, school, story, progress)


def test_demo_day_rates(tmp_path: Path) -> None:
    days = demo_days(date(2026, 11, 23))  # last week and today, a Monday
    assert days == [date(2026, 11, 16) + timedelta(days=i) for i in range(5)] + [date(2026, 11, 23)]
    assert demo_days(date(2026, 11, 22))[-1] == date(2026, 11, 20)  # on a Sunday: up to Friday
    national_day = demo_days(date(2026, 10, 8))
    assert date(2026, 9, 30) in national_day and date(2026, 10, 2) not in national_day
    db_path, logins, school = prepare(tmp_path / "demo", days[:5])
    assert set(logins) == {"admin", "headteacher", "class_teacher", "teacher", "maintainer"}
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


def test_demo_story_replay(thursday: Replayed, tmp_path: Path) -> None:
    """The replayed week on a Thursday morning: last week whole, this week so far, the rest of today
    left to play live; the fault register as the maintainer finds it."""
    now, days, school = thursday.now, thursday.days, thursday.school
    db, story = thursday.copy(tmp_path)
    demo_story.register(db, school, days, now)
    assert thursday.progress == [(i + 1, len(days)) for i in range(len(days))] and len(days) == 9
    t = now.timestamp()
    last_week = usage.week_rates(db, demo.SCHOOL, "2026-W47", "teacher", t)
    rate = sum(r["used"] for r in last_week) / sum(r["scheduled"] for r in last_week)
    assert 0.55 < rate < 0.9
    below = [r for r in last_week if r["below_threshold"]]
    assert below and len(below) < len(last_week) / 3
    so_far = usage.week_rates(db, demo.SCHOOL, "2026-W48", "class", t)
    assert 0.55 < sum(r["used"] for r in so_far) / sum(r["scheduled"] for r in so_far) < 0.9
    assert all(r["scheduled"] < 34 for r in so_far)  # Thursday afternoon and Friday are still to come
    faults = {(f["device"], f["code"], f["review"], f["cleared_t"] is None): f
              for f in db.query("SELECT * FROM faults WHERE school = ?", (demo.SCHOOL,))}
    assert set(faults) == {(demo_story.PROJECTOR_OUT, "display_missing", "pending", True),
                           (demo_story.DISK_FILLING, "disk_full", "pending", True),
                           (demo_story.NO_SOUND, "report_no_sound", "pending", True),
                           (demo_story.CONFIRMED, "display_missing", "confirmed", False),
                           (demo_story.FALSE_ALARM, "display_missing", "rejected", False)}
    tickets = db.query("SELECT device, closed_t FROM fault_tickets WHERE school = ?", (demo.SCHOOL,))
    assert len(tickets) == 5 and sum(1 for k in tickets if k["closed_t"] is not None) == 2
    confirmed = faults[(demo_story.CONFIRMED, "display_missing", "confirmed", False)]
    w47 = usage.week_rates(db, demo.SCHOOL, "2026-W47", "class", t)  # the confirmed morning is left out:
    excluded = sum(r["excluded"] for r in w47)
    assert excluded >= 1, confirmed
    devs = {r["device"]: r for r in db.query("SELECT * FROM devices WHERE school = ?", (demo.SCHOOL,))}
    assert devs[demo_story.LEFT_ON]["online"] and story.devices[demo_story.LEFT_ON].on
    night = (datetime(2026, 11, 25, 23, 0, tzinfo=ZoneInfo(demo.TZ)).timestamp(), t - 5 * 3600)
    assert db.query("SELECT COUNT(*) AS n FROM events WHERE device = ? AND type = 'heartbeat' AND t > ? AND t < ?",
                    (demo_story.LEFT_ON, *night))[0]["n"] > 50  # left on all night: it went on sending
    assert story.devices[demo_story.DISK_FILLING].disk_pct >= 95
    assert all(t - 400 < devs[d]["last_seen"] <= t for d, dev in story.devices.items() if dev.on)
    assert story.later and all(s[0] > now and s[1] != "heartbeat" for steps in story.later.values() for s in steps)
    # the alert engine looked at the week as it happened: what the maintainer finds in 故障与告警
    alerts = {(a["device"], a["kind"], a["subject"], a["state"] != "resolved")
              for a in db.query("SELECT * FROM alerts WHERE school = ?", (demo.SCHOOL,))}
    assert alerts == {(demo_story.CONFIRMED, "fault", "投影无信号", False),
                      (demo_story.FALSE_ALARM, "fault", "投影无信号", False),
                      (demo_story.LEFT_ON, "left_on", "夜间未关机", False),  # Wednesday night, resolved this morning
                      (demo_story.PROJECTOR_OUT, "fault", "投影无信号", True),
                      (demo_story.DISK_FILLING, "fault", "磁盘已满", True)}, alerts
    db.close()


def test_demo_today_plays_on(thursday: Replayed, tmp_path: Path) -> None:
    """After the replay, today carries on where it stopped: the PCs' seq numbers follow on (no gap),
    lessons after now are used live, heartbeats keep a PC that is on alive."""
    from bbt.sim import Simulation

    now = thursday.now
    db, story = thursday.copy(tmp_path)
    clock = [now]
    sim = Simulation(list(story.devices.values()), story.later, demo.TZ, clock=lambda: clock[0])
    for minutes in range(0, 9 * 60, 5):  # 10:30 to 19:30 in five-minute ticks
        clock[0] = now + timedelta(minutes=minutes)
        sim.tick()
        demo_story._store(db, [m for dev in story.devices.values() for m in dev.take()])
    assert sim.done_steps > 100 and not any(sim.steps.values())
    assert db.query("SELECT COUNT(*) AS n FROM gaps WHERE school = ?", (demo.SCHOOL,))[0]["n"] == 0
    today = usage.day_lessons(db, demo.SCHOOL, now.date(), (now + timedelta(hours=9)).timestamp())
    afternoon = [r for r in today if r["start"] >= "14:00"]
    assert afternoon and 0.5 < sum(r["used"] for r in afternoon) / len(afternoon) < 0.95
    on = [d for d, dev in story.devices.items() if dev.on]
    assert on == [demo_story.LEFT_ON]  # everyone else switched off after school
    db.close()
