"""Where a lesson is taught, and use of a classroom PC outside lessons (pure functions, no I/O).

A lesson is *away* (not taught on the class's PC, so out of the rates' denominator) when:

* a person marked it 外出上课 (kind ``away``) or 调课 (kind ``swapped``) with a reason
  (collector.lessons.lesson_marks; a headteacher can reverse the mark);
* else the timetable's ``room`` names a place that is not the class's own classroom (操场, 实验室,
  机房 ...): the class's own classroom is an empty room, the class's name, a room of one of the
  class's devices (devices import), or one of HOME_ROOMS;
* else its subject matches the school's ``not_in_classroom_subjects`` setting (体育, 实验, 信息技术 ...;
  globs such as ``体育*`` allowed, case-insensitive).

课外使用 (use outside lessons, the rule 不得允许学生单独使用): the in-use time of a device on a school
day that lies outside its class's lessons taught in the classroom (breaks, lunch, after school, and
lessons the class spends elsewhere).
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence

from collector.lessons.attribution import Interval, Lesson, merge

MARK_KINDS = {"away": "外出上课", "swapped": "调课"}
HOME_ROOMS = ("本班", "本教室", "教室", "班级", "本班教室")


@dataclass(frozen=True)
class Mark:
    id: int
    kind: str  # a MARK_KINDS key
    reason: str
    by: str


def subject_elsewhere(subject: str, patterns: Iterable[str]) -> bool:
    """Whether a subject matches one of the school's not-in-classroom subjects (globs, any case)."""
    s = subject.strip().casefold()
    return any(fnmatch.fnmatchcase(s, p.strip().casefold()) for p in patterns if p.strip())


def room_elsewhere(room: str | None, klass: str, own_rooms: Iterable[str]) -> bool:
    """Whether a timetable room is somewhere other than the class's own classroom."""
    r = (room or "").strip()
    if not r:
        return False
    home = {klass.strip(), *HOME_ROOMS, *(x.strip() for x in own_rooms if x)}
    return r not in home


def away_of(lesson: Lesson, subjects: Iterable[str], own_rooms: Iterable[str],
            mark: Mark | None = None) -> tuple[str, str] | None:
    """(status, note) for a lesson not taught on the class's PC, else None. A mark decides first."""
    if mark is not None:
        return mark.kind, f"{mark.reason}（{mark.by}）"  # the status says 外出上课 or 调课
    if room_elsewhere(lesson.room, lesson.klass, own_rooms):
        return "elsewhere", f"上课地点：{lesson.room}"
    if subject_elsewhere(lesson.subject, subjects):
        return "elsewhere", f"科目：{lesson.subject}"
    return None


def subtract(intervals: Sequence[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The parts of (merged, sorted) intervals outside every hole."""
    out: list[Interval] = []
    cuts = merge(holes)
    for s, e in intervals:
        cur = s
        for hs, he in cuts:
            if he <= cur or hs >= e:
                continue
            if hs > cur:
                out.append((cur, hs))
            cur = max(cur, he)
            if cur >= e:
                break
        if cur < e:
            out.append((cur, e))
    return out


def outside_lessons(intervals: Sequence[Interval], lessons: Iterable[tuple[float, float]], day_lo: float,
                    day_hi: float) -> list[Interval]:
    """In-use spans of one device inside [day_lo, day_hi) that are outside the given lesson spans."""
    clipped = [(max(s, day_lo), min(e, day_hi)) for s, e in intervals if e > day_lo and s < day_hi]
    return subtract(clipped, lessons)


def total_seconds(spans: Iterable[Interval]) -> float:
    return sum(e - s for s, e in spans)
