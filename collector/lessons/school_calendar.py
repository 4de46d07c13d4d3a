"""Which days are school days and whose timetable they follow (pure functions).

Order of precedence for a date:
1. the school's calendar file (kind holiday / workday / exam; a workday follows ``follows_weekday``,
   by default its own weekday);
2. outside every term the school imported (kind ``term_start`` / ``term_end`` rows of the calendar
   file), there are no lessons (vacation); a school with no terms has lessons all year;
3. mainland China's public holidays and make-up workdays (package ``chinesecalendar``).
   A make-up workday (调休上班) follows the timetable of the weekday it makes up for: the
   official in-lieu days of the same holiday are paired in date order; when that pairing is not
   possible it follows Monday. For a year the package has no data for, Monday to Friday are
   school days and the result carries a note saying so (import a calendar file to fix it);
4. otherwise Monday to Friday are school days.
Exam days (考试) have no counted lessons.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

import chinese_calendar

KINDS = ("holiday", "workday", "exam")
TERM_KINDS = ("term_start", "term_end")


@dataclass(frozen=True)
class DayPlan:
    teaching: bool
    weekday: int | None  # the timetable weekday (1 = Monday) the day follows
    kind: str  # school / weekend / holiday / workday / exam / vacation
    note: str = ""


@dataclass(frozen=True)
class Term:
    name: str
    start: date
    end: date


@lru_cache(maxsize=4096)
def official(d: date) -> tuple[str, int | None, str]:
    """Mainland China's rule for a date: (kind, follows_weekday, note); kind is holiday/workday/normal."""
    try:
        workday = chinese_calendar.is_workday(d)
    except NotImplementedError:
        return "normal", None, f"{d.year} 年法定节假日数据缺失，按周一至周五上课计算 (no holiday data for {d.year})"
    weekend = d.isoweekday() >= 6
    if not workday:
        return ("holiday" if not weekend else "weekend"), None, ""
    if weekend:
        return "workday", _makeup_follows(d), ""
    return "normal", None, ""


def _makeup_follows(d: date) -> int:
    name = chinese_calendar.workdays.get(d)
    makeups = sorted(w for w, n in chinese_calendar.workdays.items()
                     if n == name and w.isoweekday() >= 6 and abs((w - d).days) < 40)
    lieu = sorted(x for x, n in chinese_calendar.in_lieu_days.items()
                  if n == name and x.isoweekday() <= 5 and abs((x - d).days) < 40)
    if name and len(makeups) == len(lieu) and d in makeups:
        return lieu[makeups.index(d)].isoweekday()
    return 1


def term_of(d: date, terms: list[Term]) -> Term | None:
    for t in terms:
        if t.start <= d <= t.end:
            return t
    return None


def default_term(d: date) -> Term:
    """Without imported terms: autumn term 1 Sep - 31 Jan (秋季学期), spring term 1 Feb - 31 Aug (春季学期)."""
    if d.month >= 9:
        return Term(f"{d.year}-{d.year + 1} 秋季学期", date(d.year, 9, 1), date(d.year + 1, 1, 31))
    if d.month == 1:
        return Term(f"{d.year - 1}-{d.year} 秋季学期", date(d.year - 1, 9, 1), date(d.year, 1, 31))
    return Term(f"{d.year - 1}-{d.year} 春季学期", date(d.year, 2, 1), date(d.year, 8, 31))


def plan_day(d: date, overrides: dict[date, tuple[str, int | None]], terms: list[Term]) -> DayPlan:
    """The plan for one date (see the module docstring for the precedence)."""
    if d in overrides:
        kind, follows = overrides[d]
        if kind == "holiday":
            return DayPlan(False, None, "holiday")
        if kind == "exam":
            return DayPlan(False, None, "exam")
        return DayPlan(True, follows or d.isoweekday(), "workday")
    if terms and term_of(d, terms) is None:
        return DayPlan(False, None, "vacation")
    kind, follows, note = official(d)
    if kind in ("holiday", "weekend"):
        return DayPlan(False, None, kind, note)
    if kind == "workday":
        return DayPlan(True, follows, "workday", note)
    if d.isoweekday() >= 6:
        return DayPlan(False, None, "weekend", note)
    return DayPlan(True, d.isoweekday(), "school", note)


def week_parity(d: date, terms: list[Term]) -> str:
    """odd / even teaching week: counted from the term's first week (week 1 = the week the term
    starts in), or the ISO week number when the school has no terms."""
    t = term_of(d, terms)
    if t is None:
        n = d.isocalendar()[1]
    else:
        start_monday = t.start - timedelta(days=t.start.isoweekday() - 1)
        n = (d - start_monday).days // 7 + 1
    return "odd" if n % 2 else "even"


def iso_week(d: date) -> str:
    y, w, _ = d.isocalendar()
    return f"{y}-W{w:02d}"


def week_days(week: str) -> list[date]:
    """The seven dates (Monday to Sunday) of an ISO week '2026-W48'; ValueError when malformed."""
    try:
        y, w = week.split("-W")
        monday = date.fromisocalendar(int(y), int(w), 1)
    except (ValueError, AttributeError):
        raise ValueError(f"week {week!r} is not an ISO week like 2026-W48") from None
    return [monday + timedelta(days=i) for i in range(7)]
