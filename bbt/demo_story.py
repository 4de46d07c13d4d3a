"""The demo school's week as a story, written into the store before the dashboard opens.

The past school days (last week and this week up to now) are replayed at once: each simulated PC's
messages go through the collector's own validation and store (``collector.devices.ingest.prepare`` and
``collector.intake.store.apply_batch``), stamped as received when they were sent. On the way, the things a
maintainer meets happen through the agents' fault events: a projector without signal, a disk filling,
a PC left on; a teacher's 报修; one entry confirmed as affecting teaching, one rejected as 误报.
What happens from now on plays live on the real clock (``bbt.sim.Simulation``).
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from bbt import demo
from bbt.sim import RecordingDevice, Step, plan_day
from collector.db import Database
from collector.devices.ingest import Incoming

HISTORY_HEARTBEAT_S = 120  # the replayed days: within the collector's online window (3 × 60 s)
BATCH = 500
# the story's PCs (their classrooms): see tell()
PROJECTOR_OUT = "pc-A203"      # 投影无信号 since the last school day, awaiting review
DISK_FILLING = "pc-B305"       # the system drive fills up day by day: 磁盘已满
CONFIRMED = "pc-A104"          # a projector out for a morning last week, confirmed as affecting teaching
FALSE_ALARM = "pc-B201"        # "no signal" for a few minutes: the teacher switched the source; 误报
NO_SOUND = "pc-A306"           # a teacher's 报修: no sound
LEFT_ON = "pc-B106"            # left on since the last school day (夜间未关机)
GAME = ("英雄联盟", r"C:\Riot Games\League of Legends\LeagueClient.exe", "*LeagueClient*")
MAINTAINER = "网管老刘"
POLICY = {"software": {"deny": ["*LeagueClient*", "*steam*", "*4399*"], "action": "report"}}


@dataclass
class Story:
    """What the replay left: the PCs' state now, what they still do today, and counts."""

    devices: dict[str, RecordingDevice] = field(default_factory=dict)
    later: dict[str, list[Step]] = field(default_factory=dict)  # today's steps after now (no heartbeats)
    events: int = 0


def history_days(today: date) -> list[date]:
    """The ordinary school days from last week's Monday up to today (today if it is one), oldest first."""
    from collector.lessons.school_calendar import official

    monday = today - timedelta(days=today.weekday() + 7)
    days = [monday + timedelta(days=i) for i in range((today - monday).days + 1)]
    return [d for d in days if d.isoweekday() <= 5 and official(d)[0] == "normal"]


def _at(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, datetime.strptime(hhmm, "%H:%M").time(), tz)


def incidents(days: list[date], now: datetime) -> dict[str, list[Step]]:
    """The story's extra steps per device (the days are the replayed ones, oldest first)."""
    tz = now.tzinfo
    assert isinstance(tz, ZoneInfo)
    past = [d for d in days if _at(d, "17:30", tz) <= now] or days[:1]
    last, first = past[-1], past[0]
    second = past[min(1, len(past) - 1)]
    third = past[min(2, len(past) - 1)]
    out: dict[str, list[Step]] = {
        PROJECTOR_OUT: [(_at(last, "09:55", tz), "fault", {"code": "display_missing", "severity": "critical",
                                                            "detail": "HDMI 无信号"})],
        CONFIRMED: [(_at(second, "08:05", tz), "fault", {"code": "display_missing", "severity": "critical",
                                                         "detail": "投影机灯泡不亮"}),
                    (_at(second, "11:40", tz), "fault", {"code": "display_missing", "severity": "critical",
                                                         "state": "cleared"})],
        FALSE_ALARM: [(_at(third, "14:02", tz), "fault", {"code": "display_missing", "severity": "warning",
                                                          "detail": "HDMI 无信号"}),
                      (_at(third, "14:24", tz), "fault", {"code": "display_missing", "severity": "warning",
                                                          "state": "cleared"})],
        DISK_FILLING: [(_at(last, "13:30", tz), "fault", {"code": "disk_full", "severity": "critical",
                                                          "detail": "C: 剩余 1.2 GB"})],
    }
    for i, d in enumerate(past):  # the disk fills a little more every day
        pct = min(97.0, 78.0 + 19.0 * (d - first).days / max(1, (last - first).days))
        out[DISK_FILLING].insert(i, (_at(d, "07:00", tz), "set_disk", {"pct": round(pct, 1)}))
    for dev, steps in out.items():  # a fault is reported by a PC that is on
        out[dev] = sorted(steps + [(w - timedelta(minutes=1), "power_on", {}) for w, a, _ in steps if a == "fault"],
                          key=lambda s: s[0])
    return out


def _day_steps(school: demo.DemoSchool, rng: random.Random, device: str, day: date, tz: ZoneInfo,
               extra: list[Step], left_on: bool) -> list[Step]:
    start = datetime(day.year, day.month, day.day, 7, 0, tzinfo=tz)
    # the story decides who forgets to switch off: one PC, since the last school day's evening
    forgets = device == LEFT_ON and left_on
    steps = plan_day(rng, start, school.lessons_for(device, day), leave_on_prob=1.0 if forgets else 0.0,
                     heartbeat_s=HISTORY_HEARTBEAT_S).steps
    steps += [s for s in extra if s[0].date() == day]
    return sorted(steps, key=lambda s: s[0])


def _store(db: Database, messages: list[Incoming]) -> int:
    from collector.devices.ingest import prepare
    from collector.intake.store import apply_batch

    messages.sort(key=lambda m: m.received)  # stable: one PC's messages keep their order
    stored = 0
    for i in range(0, len(messages), BATCH):
        prepared = [prepare(m) for m in messages[i:i + BATCH]]
        bad = [p for p in prepared if p.kind == "rejected"]
        if bad:
            raise RuntimeError(f"demo history message rejected: {bad[0].code} {bad[0].reason}")
        stored += apply_batch(db, prepared).stored
    return stored


def replay(db: Database, school: demo.DemoSchool, days: list[date], now: datetime,
           progress: Callable[[int, int], None] = lambda i, n: None, seed: int = 11) -> Story:
    """Store the days' messages up to ``now``, the alert engine looking at them as it would have then
    (``alerts.engine.AlertEngine`` on a clock set to each moment); today's later steps are left in the
    story to play live."""
    from alerts.engine import AlertEngine

    tz = now.tzinfo
    assert isinstance(tz, ZoneInfo)
    rng = random.Random(seed)
    story = Story({d["device"]: RecordingDevice(demo.SCHOOL, d["device"]) for d in school.devices})
    extra = incidents(days, now)
    last_evening = max([d for d in days if _at(d, "17:30", tz) <= now] or days[:1])
    clock = [now.timestamp()]
    engine = AlertEngine(db, clock=lambda: clock[0], weekly=None)
    for i, day in enumerate(days):
        messages: list[Incoming] = []
        night = min(_at(day + timedelta(days=1), "06:55", tz), now)
        for name, dev in story.devices.items():
            steps = _day_steps(school, rng, name, day, tz, extra.get(name, []), day >= last_evening)
            if steps:
                _keep_alive(dev, min(steps[0][0], now))  # a PC left on: through the night, the weekend
            for step in steps:
                if step[0] <= now:
                    dev.do(step)
                elif step[1] != "heartbeat":
                    story.later.setdefault(name, []).append(step)
            _keep_alive(dev, night)
            messages += dev.take()
        messages.sort(key=lambda m: m.received)
        for cut in [c.timestamp() for c in alert_passes(day, tz) if c <= now]:
            head = next((k for k, m in enumerate(messages) if m.received > cut), len(messages))
            story.events += _store(db, messages[:head])
            messages = messages[head:]
            clock[0] = cut
            engine.run_once({demo.SCHOOL})
        story.events += _store(db, messages)
        progress(i + 1, len(days))
    for dev in story.devices.values():
        _keep_alive(dev, now)
    story.events += _store(db, [m for dev in story.devices.values() for m in dev.take()])
    return story


def alert_passes(day: date, tz: ZoneInfo) -> list[datetime]:
    """When the replay lets the alert engine look: every 15 minutes of the school day, twice at night."""
    start = _at(day, "07:00", tz)
    return [start + timedelta(minutes=15 * k) for k in range(49)] + [_at(day, "22:00", tz), _at(day, "23:00", tz)]


def _keep_alive(dev: RecordingDevice, until: datetime) -> None:
    """A PC that is on sends its heartbeats up to ``until``."""
    if dev.on and dev.last_heartbeat is not None:
        t = dev.last_heartbeat + timedelta(seconds=HISTORY_HEARTBEAT_S)
        while t < until:
            dev.heartbeat(t)
            t += timedelta(seconds=HISTORY_HEARTBEAT_S)


def fault_id(db: Database, device: str, code: str) -> int:
    rows = db.query("SELECT id FROM faults WHERE school = ? AND device = ? AND code = ? ORDER BY opened_t",
                    (demo.SCHOOL, device, code))
    return int(rows[0]["id"])


def register(db: Database, school: demo.DemoSchool, days: list[date], now: datetime) -> None:
    """The fault register as a maintainer would have it: tickets for the PCs' faults, a teacher's 报修,
    one entry confirmed (影响上课), one rejected (误报), the rest awaiting review (待核实)."""
    from alerts import faultlog
    from collector.rates import fault_review

    t = now.timestamp()
    tz = now.tzinfo
    assert isinstance(tz, ZoneInfo)
    faultlog.sync_tickets(db, demo.SCHOOL, t)
    past = [d for d in days if _at(d, "17:30", tz) <= now] or days[:1]
    klass = school.class_of(NO_SOUND)  # the 报修 comes from a teacher of that classroom
    teacher = next(r["teacher"] for r in school.timetable if r["class"] == klass)
    faultlog.register_fault(db, demo.SCHOOL, NO_SOUND, "report_no_sound", "warning", teacher,
                            opened_t=_at(past[-1], "10:45", tz).timestamp(), summary="上课时音箱没有声音", now=t)
    confirmed = fault_id(db, CONFIRMED, "display_missing")
    fault_review.review_fault(db, confirmed, "confirmed", MAINTAINER, via="demo", now=t)
    ticket = db.query("SELECT id FROM fault_tickets WHERE fault_id = ?", (confirmed,))[0]["id"]
    faultlog.update_ticket(db, int(ticket), {"cause": "投影机灯泡老化", "handling": "更换灯泡",
                                             "parts": "投影机灯泡 1 只"}, MAINTAINER, close=True, now=t)
    rejected = fault_id(db, FALSE_ALARM, "display_missing")
    fault_review.review_fault(db, rejected, "rejected", MAINTAINER, via="demo", now=t)
    ticket = db.query("SELECT id FROM fault_tickets WHERE fault_id = ?", (rejected,))[0]["id"]
    faultlog.update_ticket(db, int(ticket), {"cause": "老师切换了投影信号源", "handling": "无需维修"},
                           MAINTAINER, close=True, now=t)


def live_game_device(story: Story) -> str:
    """Where the unauthorized game shows up live: a PC in use now, else one that is on (the one left on)."""
    on = [d for d in story.devices.values() if d.on]
    used = [d for d in on if d.in_use]
    return (used or on or [story.devices[LEFT_ON]])[0].device

