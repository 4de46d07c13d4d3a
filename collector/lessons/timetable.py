"""The school model in memory and the lessons it schedules on a date (pure functions).

A lesson is one (date, class, period) the timetable and calendar schedule. Odd/even-week rows
apply in odd/even teaching weeks (collector.lessons.school_calendar.week_parity). A substitution names
the teacher who actually takes the lesson (代课); with a period the timetable leaves free on that
day it adds a lesson (调课, subject from its optional ``subject`` column, else "调课"); with an
empty teacher (or "-") it cancels the lesson.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from collector.lessons import usage_settings
from collector.lessons.attribution import Lesson
from collector.lessons.school_calendar import DayPlan, Term, plan_day, week_parity

DEFAULT_SETTINGS = dict(usage_settings.DEFAULTS)  # one owner of the defaults: collector.lessons.usage_settings


@dataclass(frozen=True)
class BellSet:
    valid_from: date
    schedule: str
    periods: dict[int, tuple[int, int]]  # period -> (start minute, end minute) of the day


@dataclass(frozen=True)
class Slot:
    klass: str
    weekday: int
    period: int
    weeks: str  # all / odd / even
    teacher: str
    subject: str
    room: str | None = None  # the optional timetable column: where the lesson is taught


@dataclass
class SchoolModel:
    school: str
    tz: ZoneInfo
    bells: list[BellSet] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    subs: dict[str, list[tuple[str, int, str, str | None]]] = field(default_factory=dict)  # date -> rows
    overrides: dict[date, tuple[str, int | None]] = field(default_factory=dict)
    terms: list[Term] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))

    def __post_init__(self) -> None:
        self._by_weekday: dict[int, list[Slot]] = {}
        self.index()

    def index(self) -> None:
        self._by_weekday = {}
        for s in self.slots:
            self._by_weekday.setdefault(s.weekday, []).append(s)
        self.bells.sort(key=lambda b: b.valid_from)

    def slots_on(self, weekday: int) -> list[Slot]:
        return self._by_weekday.get(weekday, [])


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def bell_for(model: SchoolModel, d: date) -> BellSet | None:
    """The bell schedule in force on a date: the one with the latest valid_from on or before it."""
    chosen = None
    for b in model.bells:
        if b.valid_from <= d:
            chosen = b
    return chosen


def _epoch(d: date, minutes: int, tz: ZoneInfo) -> float:
    return datetime.combine(d, time(minutes // 60, minutes % 60), tz).timestamp()


def lessons_on(model: SchoolModel, d: date) -> tuple[DayPlan, list[Lesson]]:
    """The day's plan and its lessons, sorted by class and period."""
    plan = plan_day(d, model.overrides, model.terms)
    bell = bell_for(model, d)
    if not plan.teaching or plan.weekday is None or bell is None:
        return plan, []
    parity = week_parity(d, model.terms)
    ds = d.isoformat()
    taught: dict[tuple[str, int], tuple[str, str, bool]] = {}
    rooms: dict[tuple[str, int], str | None] = {}
    for s in model.slots_on(plan.weekday):
        if s.weeks in ("all", parity):
            taught[(s.klass, s.period)] = (s.teacher, s.subject, False)
            rooms[(s.klass, s.period)] = s.room
    for klass, period, teacher, subject in model.subs.get(ds, []):
        if teacher in ("", "-"):
            taught.pop((klass, period), None)
            continue
        old = taught.get((klass, period))
        subj = subject or (old[1] if old else "调课")
        if old is None or subj != old[1]:  # another subject: the timetable's room was for the old one
            rooms.pop((klass, period), None)
        taught[(klass, period)] = (teacher, subj, old is None or old[0] != teacher)
    out = []
    for (klass, period), (teacher, subject, sub) in sorted(taught.items()):
        if period not in bell.periods:
            continue
        a, b = bell.periods[period]
        out.append(Lesson(ds, klass, period, teacher, subject, _epoch(d, a, model.tz), _epoch(d, b, model.tz),
                          hhmm(a), hhmm(b), sub, rooms.get((klass, period))))
    return plan, out
