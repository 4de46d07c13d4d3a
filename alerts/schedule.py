"""What the alert rules need to know about the timetable, behind a small interface.

The usage area owns the bell/timetable/calendar tables; until the engine is given a schedule
that reads them, ``NoSchedule`` knows no lessons (lesson-based rules stay quiet) and treats
mainland China's working days as term time. ``StaticSchedule`` takes plain data.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo


class Schedule(Protocol):
    def lessons_now(self, school: str, t: float) -> dict[str, tuple[float, float]]:
        """class -> (start, end) of the lesson that class has at time t."""
        ...

    def last_lesson_end(self, school: str, t: float) -> dict[str, float]:
        """class -> end of its last lesson on the (school-local) day of t."""
        ...

    def in_term(self, school: str, t: float) -> bool:
        ...


def is_workday(d: date) -> bool:
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(d))
    except (ImportError, NotImplementedError):  # outside the library's years
        return d.weekday() < 5


class NoSchedule:
    def __init__(self, tz: str = "Asia/Shanghai") -> None:
        self.tz = ZoneInfo(tz)

    def lessons_now(self, school: str, t: float) -> dict[str, tuple[float, float]]:
        return {}

    def last_lesson_end(self, school: str, t: float) -> dict[str, float]:
        return {}

    def in_term(self, school: str, t: float) -> bool:
        return is_workday(datetime.fromtimestamp(t, self.tz).date())


class StaticSchedule(NoSchedule):
    """Lessons as plain data: class -> [(start, end), ...] in epoch seconds."""

    def __init__(self, lessons: Mapping[str, Sequence[tuple[float, float]]], term: bool | None = None,
                 tz: str = "Asia/Shanghai") -> None:
        super().__init__(tz)
        self.lessons = {k: sorted(v) for k, v in lessons.items()}
        self.term = term

    def lessons_now(self, school: str, t: float) -> dict[str, tuple[float, float]]:
        out = {}
        for klass, spans in self.lessons.items():
            for s, e in spans:
                if s <= t < e:
                    out[klass] = (s, e)
        return out

    def last_lesson_end(self, school: str, t: float) -> dict[str, float]:
        day = datetime.fromtimestamp(t, self.tz).date()
        out = {}
        for klass, spans in self.lessons.items():
            ends = [e for s, e in spans if datetime.fromtimestamp(s, self.tz).date() == day]
            if ends:
                out[klass] = max(ends)
        return out

    def in_term(self, school: str, t: float) -> bool:
        return super().in_term(school, t) if self.term is None else self.term
