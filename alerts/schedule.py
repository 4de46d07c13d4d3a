"""What the alert rules need to know about the timetable, behind a small interface.

``DbSchedule`` reads the school model the usage area keeps (bell, timetable, substitutions,
calendar, terms: collector.rates.usage.load_model); ``NoSchedule`` knows no lessons and treats mainland
China's working days as teaching days; ``StaticSchedule`` takes plain data (tests, tools).
"""
from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from typing import Any, Mapping, Protocol, Sequence
from zoneinfo import ZoneInfo

MAX_LOOKBACK_DAYS = 60


class Schedule(Protocol):
    def lessons_now(self, school: str, t: float) -> dict[str, tuple[float, float]]:
        """class -> (start, end) of the lesson that class has at time t."""
        ...

    def last_lesson_end(self, school: str, t: float) -> dict[str, float]:
        """class -> end of its last lesson on the (school-local) day of t."""
        ...

    def in_term(self, school: str, t: float) -> bool:
        """Whether the (school-local) day of t is a teaching day."""
        ...


def is_workday(d: date) -> bool:
    try:
        import chinese_calendar

        return bool(chinese_calendar.is_workday(d))
    except (ImportError, NotImplementedError):  # outside the library's years
        return d.weekday() < 5


def term_cutoff(sched: Schedule, school: str, now: float, hours: float, tz: ZoneInfo) -> float | None:
    """The moment before which a device's silence spans ``hours`` of teaching-day time (weekends and
    holidays do not count); None when that reaches back further than the look-back (holidays)."""
    need = hours * 3600
    local = datetime.fromtimestamp(now, tz)
    day = local.date()
    end = now
    for _ in range(MAX_LOOKBACK_DAYS):
        start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        if sched.in_term(school, start + 43200):
            span = end - start
            if span >= need:
                return end - need
            need -= span
        end = start
        day -= timedelta(days=1)
    return None


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


class DbSchedule:
    """The school's own timetable and calendar from the store (reloaded every ``ttl_s``)."""

    def __init__(self, db: Any, ttl_s: float = 60.0) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._models: dict[str, tuple[float, Any]] = {}
        self._days: dict[tuple[str, date], tuple[bool, list[Any]]] = {}
        self._lock = threading.Lock()

    def _model(self, school: str) -> Any:
        from collector.rates.usage import load_model

        with self._lock:
            hit = self._models.get(school)
            if hit is None or time.monotonic() - hit[0] > self.ttl_s:
                hit = (time.monotonic(), load_model(self.db, school))
                self._models[school] = hit
                self._days = {k: v for k, v in self._days.items() if k[0] != school}
            return hit[1]

    def _day(self, school: str, t: float) -> tuple[bool, list[Any]]:
        from collector.lessons.timetable import lessons_on

        model = self._model(school)
        d = datetime.fromtimestamp(t, model.tz).date()
        key = (school, d)
        if key not in self._days:
            plan, lessons = lessons_on(model, d)
            self._days[key] = (plan.teaching, lessons)
        return self._days[key]

    def lessons_now(self, school: str, t: float) -> dict[str, tuple[float, float]]:
        return {ls.klass: (ls.start_t, ls.end_t) for ls in self._day(school, t)[1] if ls.start_t <= t < ls.end_t}

    def last_lesson_end(self, school: str, t: float) -> dict[str, float]:
        out: dict[str, float] = {}
        for ls in self._day(school, t)[1]:
            out[ls.klass] = max(out.get(ls.klass, 0.0), ls.end_t)
        return out

    def in_term(self, school: str, t: float) -> bool:
        return self._day(school, t)[0]
