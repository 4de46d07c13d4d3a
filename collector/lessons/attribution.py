"""Lesson usage attribution (protocol.md §3) as pure functions over plain data. No I/O here.

How in-use time is built from a device's events (times are epoch seconds, events sorted by
time then seq; events flagged as clock faults are left out by the caller):

* A ``session`` "end" event gives the interval [data.start, data.end] — it is authoritative,
  even when its "start" event was never received.
* A "start" event with no matching "end" is an *open* session. It lasts until the device's last
  sign of being in use: the last heartbeat with ``in_use`` true after the start (or the start
  itself when none came). It is closed at that point by a heartbeat reporting ``in_use`` false, a
  new session start, a power "on" (the PC rebooted), or the end of the data (the agent died or
  went silent) — so a device that went silent mid-lesson counts up to its last heartbeat and
  not beyond. A power "off"/"sleep" event closes it at the power event's time.
* Heartbeats also count on their own: a run of consecutive heartbeats with ``in_use`` true, no
  two more than ``2 × heartbeat_s`` apart and not separated by a power event, is in use from the
  first to the last heartbeat of the run (this recovers usage whose session events were lost,
  e.g. from an older agent). Nothing is extrapolated beyond an observed heartbeat.
* The in-use time of the device is the union of all these intervals (nothing counts twice).

A lesson is *used* when the in-use time inside [start, end] is at least ``min_use_minutes``.

Faults (protocol.md §3): a fault excuses a lesson (status "faulty", out of the denominator)
only when a maintainer or admin **confirmed** its register entry, and only for the confirmed
interval (default: from its opening to its clearing). An entry still awaiting review (待核实)
excuses nothing: the lesson counts as measured (used / not used / device off) and is flagged
``awaiting_review`` so that rate rows can say how many lessons a review could still change. A
rejected entry (误报) and the codes in ``NEVER_EXCUSES`` (an ``unclean_shutdown`` after a mains cut,
a clock skew) excuse nothing and await nothing. Rates and the threshold: collector.rates.usage.
"""
from __future__ import annotations

import bisect
import operator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

Interval = tuple[float, float]

STATUSES = ("used", "not_used", "device_off", "faulty", "no_device", "pending", "elsewhere", "away", "swapped")
STATUS_ZH = {"used": "已使用", "not_used": "未使用", "device_off": "设备未开机", "faulty": "设备故障",
             "no_device": "无设备", "pending": "未结束", "elsewhere": "不在本教室", "away": "外出上课",
             "swapped": "调课"}
# lessons not taught on the class's PC (collector.lessons.lesson_place): out of the denominator, like no_device
AWAY_STATUSES = ("elsewhere", "away", "swapped")
COUNTED_SEVERITIES = ("warning", "critical")  # a pending entry of these severities awaits review
# not a reason a lesson could not be taught (the protection faults: 病毒防护, 安全补丁, collector.intake.protection)
NEVER_EXCUSES = ("unclean_shutdown", "clock", "virus", "av_off", "av_outdated", "patches_pending")
REVIEWS = ("pending", "confirmed", "rejected")


class Ev(NamedTuple):
    t: float
    type: str
    data: Mapping[str, Any]
    seq: int = 0


@dataclass(frozen=True)
class Fault:
    code: str
    severity: str
    opened_t: float
    cleared_t: float | None = None
    review: str = "pending"  # REVIEWS
    from_t: float | None = None  # the confirmed interval; None: from the opening ...
    to_t: float | None = None  # ... to the clearing (None while it is open)

    def span(self) -> tuple[float, float | None]:
        """The interval the entry covers: the confirmed one, else opening to clearing."""
        start = self.opened_t if self.from_t is None else self.from_t
        return start, self.cleared_t if self.to_t is None else self.to_t

    def during(self, start: float, end: float) -> bool:
        """Whether the entry covered some moment of [start, end)."""
        lo, hi = self.span()
        return lo < end and (hi is None or hi > start)


@dataclass(frozen=True)
class Lesson:
    date: str  # YYYY-MM-DD, local to the school
    klass: str
    period: int
    teacher: str
    subject: str
    start_t: float
    end_t: float
    start: str  # HH:MM
    end: str
    substitute: bool = False
    room: str | None = None  # the timetable's optional room column (None: the class's own classroom)


@dataclass
class LessonUsage:
    lesson: Lesson
    device: str | None
    in_use_s: float
    used: bool
    counted: bool  # in the denominator of the rates
    status: str
    faults: list[str] = field(default_factory=list)
    awaiting_review: bool = False  # measured, but a pending fault entry covers it
    note: str | None = None  # why a lesson is away (subject, room, or a person's 外出上课/调课 mark)

    @property
    def in_use_minutes(self) -> float:
        return round(self.in_use_s / 60.0, 1)


def epoch_of(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 string, or None when it is missing or not a time."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def session_intervals(events: Sequence[Ev]) -> list[Interval]:
    """Intervals from session events (ended ones from their end event; open ones as documented)."""
    out: list[Interval] = []
    open_start: float | None = None
    open_id: Any = None
    last_alive = 0.0

    def close(at: float) -> None:
        nonlocal open_start
        if open_start is not None and at > open_start:
            out.append((open_start, at))
        open_start = None

    for e in events:
        if e.type == "session":
            state = e.data.get("state")
            sid = e.data.get("session_id")
            if state == "start":
                close(last_alive)
                open_start, open_id, last_alive = e.t, sid, e.t
            elif state == "end":
                s = epoch_of(e.data.get("start"))
                end = epoch_of(e.data.get("end"))
                end = e.t if end is None else end
                if s is None and open_start is not None and sid == open_id:
                    s = open_start
                if s is not None and end > s:
                    out.append((s, end))
                if open_start is not None and (sid == open_id or sid is None):
                    open_start = None
        elif e.type == "heartbeat" and open_start is not None:
            if e.data.get("in_use"):
                last_alive = max(last_alive, e.t)
            else:
                close(last_alive)
        elif e.type == "power" and open_start is not None:
            state = e.data.get("state")
            if state in ("off", "sleep"):
                close(e.t)
            elif state == "on":
                close(last_alive)
    if open_start is not None:
        close(last_alive)
    return out


def heartbeat_intervals(events: Sequence[Ev], heartbeat_s: float = 60.0) -> list[Interval]:
    """Runs of in-use heartbeats (see the module docstring)."""
    out: list[Interval] = []
    run: list[float] = []
    max_gap = 2.0 * heartbeat_s

    def flush() -> None:
        if len(run) >= 2 and run[-1] > run[0]:
            out.append((run[0], run[-1]))
        run.clear()

    for e in events:
        if e.type == "heartbeat":
            if e.data.get("in_use"):
                if run and e.t - run[-1] > max_gap:
                    flush()
                run.append(e.t)
            elif run:
                flush()
        elif e.type == "power" and run:
            flush()
    flush()
    return out


_time_order = operator.itemgetter(0, 3)  # (t, seq) of an Ev


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def in_use_intervals(events: Iterable[Ev], heartbeat_s: float = 60.0) -> list[Interval]:
    """The merged in-use intervals of one device."""
    evs = sorted(events, key=_time_order)
    return merge(session_intervals(evs) + heartbeat_intervals(evs, heartbeat_s))


def overlap_seconds(intervals: Sequence[Interval], start: float, end: float) -> float:
    total = 0.0
    for s, e in intervals:
        if e <= start:
            continue
        if s >= end:
            break
        total += min(e, end) - max(s, start)
    return total


def seen_between(times: Sequence[float], start: float, end: float) -> bool:
    """Whether any event time (sorted) lies in [start, end]."""
    i = bisect.bisect_left(times, start)
    return i < len(times) and times[i] <= end


def open_faults_during(faults: Iterable[Fault], start: float, end: float) -> list[str]:
    """Codes of warning/critical faults that were open at some moment of [start, end) (shown with
    the lesson; whether they excuse it is ``excusing_faults``)."""
    return sorted({f.code for f in faults if f.severity in COUNTED_SEVERITIES and f.during(start, end)})


def excusing_faults(faults: Iterable[Fault], start: float, end: float) -> list[str]:
    """Codes of confirmed faults whose confirmed interval covers some moment of [start, end)."""
    return sorted({f.code for f in faults if f.review == "confirmed" and f.code not in NEVER_EXCUSES
                   and f.during(start, end)})


def awaiting_faults(faults: Iterable[Fault], start: float, end: float) -> list[str]:
    """Codes of warning/critical entries awaiting review that were open during [start, end)."""
    return sorted({f.code for f in faults if f.review == "pending" and f.code not in NEVER_EXCUSES
                   and f.severity in COUNTED_SEVERITIES and f.during(start, end)})


def attribute(lesson: Lesson, device: str | None, intervals: Sequence[Interval], seen: Sequence[float],
              faults: Iterable[Fault], min_use_minutes: float = 10.0, now: float | None = None,
              exclude_faulty: bool = True, away: tuple[str, str] | None = None) -> LessonUsage:
    """One lesson's usage and status: used / not_used / device_off / faulty / no_device / pending, or
    ``away`` = (status, note) when the lesson is not taught on the class's PC (collector.lessons.lesson_place).
    Only a confirmed fault makes it "faulty" (see the module docstring)."""
    if now is not None and lesson.end_t > now:
        return LessonUsage(lesson, device, 0.0, False, False, "pending")
    if away is not None:  # taught elsewhere or marked 外出上课/调课: decided before the device's data
        return LessonUsage(lesson, device, 0.0, False, False, away[0], note=away[1])
    if device is None:  # a class with no PC lowers nobody's rate
        return LessonUsage(lesson, None, 0.0, False, False, "no_device")
    faults = list(faults)
    in_use = overlap_seconds(intervals, lesson.start_t, lesson.end_t)
    used = in_use >= min_use_minutes * 60.0 - 1e-6
    codes = open_faults_during(faults, lesson.start_t, lesson.end_t)
    if used:
        return LessonUsage(lesson, device, in_use, True, True, "used", codes)
    excusing = excusing_faults(faults, lesson.start_t, lesson.end_t)
    if excusing:
        return LessonUsage(lesson, device, in_use, False, not exclude_faulty, "faulty", excusing)
    awaiting = bool(awaiting_faults(faults, lesson.start_t, lesson.end_t))
    if in_use <= 0 and not seen_between(seen, lesson.start_t, lesson.end_t):
        return LessonUsage(lesson, device, 0.0, False, True, "device_off", codes, awaiting)
    return LessonUsage(lesson, device, in_use, False, True, "not_used", codes, awaiting)
