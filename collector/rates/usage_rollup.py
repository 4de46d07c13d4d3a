"""The per-lesson rollup (``lesson_usage``, ``outside_use``): computing a day, its freshness, and
reading it without writing.

* ``compute_day_outside`` attributes every lesson of a date from the stored events and faults;
* ``stale_days`` is the one freshness rule: a day is stale when ingest, an import, a settings change,
  a lesson mark or a fault review marked it dirty, when lessons have ended since it was computed,
  or when a fault overlapping it was registered since;
* ``rollup_rows`` / ``outside_rows`` read days: stored rows for fresh days, and for stale days the
  rows computed in memory (``live_day``, a small cache keyed by the day's version). Reads never
  write;
* ``store_day`` / ``refresh_days`` store days (the scheduled job of collector.rates.usage_jobs, a week's
  publication, the daily patrol record).
"""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable, Hashable

from collector.db import Database
from collector.devices.registry import school_tz
from collector.lessons import usage_settings
from collector.lessons.attribution import Ev, Fault, Interval, Lesson, LessonUsage, attribute, in_use_intervals
from collector.lessons.lesson_marks import active_marks
from collector.lessons.lesson_place import away_of, outside_lessons
from collector.lessons.school_calendar import Term, iso_week
from collector.lessons.timetable import BellSet, SchoolModel, Slot, lessons_on

MARGIN_BEFORE_S = 2 * 3600  # events from 22:00 the evening before (a session started then)
MARGIN_AFTER_S = 3600  # ... to an hour after the last lesson (the end event of a session in it)
LIVE_DAYS = 256  # days computed in memory kept per process (rows as tuples: ~120 kB a school day of 320 lessons)
Row = dict[str, Any]


def load_model(db: Database, school: str) -> SchoolModel:
    m = SchoolModel(school, school_tz(db, school), settings=usage_settings.get(db, school))
    bells: dict[str, BellSet] = {}
    for r in db.query("SELECT valid_from, schedule, period, start_min, end_min FROM bell_periods WHERE school = ?",
                      (school,)):
        b = bells.setdefault(r["valid_from"], BellSet(date.fromisoformat(r["valid_from"]), r["schedule"], {}))
        b.periods[int(r["period"])] = (int(r["start_min"]), int(r["end_min"]))
    m.bells = list(bells.values())
    m.slots = [Slot(r["class"], int(r["weekday"]), int(r["period"]), r["weeks"], r["teacher"], r["subject"],
                    r.get("room") or None) for r in db.query("SELECT * FROM timetable WHERE school = ?", (school,))]
    for r in db.query("SELECT * FROM substitutions WHERE school = ?", (school,)):
        m.subs.setdefault(r["date"], []).append((r["class"], int(r["period"]), r["teacher"], r["subject"]))
    m.overrides = {date.fromisoformat(r["date"]): (r["kind"], r["follows_weekday"])
                   for r in db.query("SELECT * FROM calendar_days WHERE school = ?", (school,))}
    m.terms = [Term(r["name"], date.fromisoformat(r["start_date"]), date.fromisoformat(r["end_date"]))
               for r in db.query("SELECT * FROM terms WHERE school = ? ORDER BY start_date", (school,))]
    m.index()
    return m


def today_at(db: Database, school: str, now: float | None = None) -> date:
    """The school's local date at ``now`` (default: the current time)."""
    return datetime.fromtimestamp(time.time() if now is None else now, school_tz(db, school)).date()


def day_bounds(d: date, tz: Any) -> tuple[float, float]:
    start = datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()
    nxt = d + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()


HB_IN_USE: dict[str, Any] = {"in_use": True}
HB_IDLE: dict[str, Any] = {"in_use": False}


def _device_events(db: Database, school: str, lo: float, hi: float) -> dict[str, list[Ev]]:
    """The school's session, power and heartbeat events in [lo, hi) per device, in time order.
    Heartbeats' in_use is read in SQL (the stored JSON is compact: '"in_use":true')."""
    out: dict[str, list[Ev]] = {}
    for r in db.query("SELECT device, t, seq, CASE WHEN data LIKE '%\"in_use\":true%' THEN 1 ELSE 0 END AS iu "
                      "FROM events WHERE school = ? AND type = 'heartbeat' AND t >= ? AND t < ? AND clock_fault = 0",
                      (school, lo, hi)):
        out.setdefault(r["device"], []).append(Ev(r["t"], "heartbeat", HB_IN_USE if r["iu"] else HB_IDLE, r["seq"]))
    for r in db.query("SELECT device, t, seq, type, data FROM events WHERE school = ? AND type IN (?, ?) "
                      "AND t >= ? AND t < ? AND clock_fault = 0", (school, "session", "power", lo, hi)):
        out.setdefault(r["device"], []).append(Ev(r["t"], r["type"], json.loads(r["data"]), r["seq"]))
    return out


# per device of a class: (class, in-use spans outside the class's lessons taught in the classroom)
Outside = dict[str, tuple[str, list[Interval]]]


def _away(db: Database, model: SchoolModel, d: date, lessons: list[Lesson],
          rooms: dict[str, set[str]]) -> dict[tuple[str, int], tuple[str, str]]:
    """(class, period) -> (status, note) of the day's lessons not taught on the class's PC."""
    marks = active_marks(db, model.school, [d.isoformat()])
    subjects: list[str] = list(model.settings.get("not_in_classroom_subjects") or [])
    out = {}
    for ls in lessons:
        away = away_of(ls, subjects, rooms.get(ls.klass, ()), marks.get((ls.date, ls.klass, ls.period)))
        if away is not None:
            out[(ls.klass, ls.period)] = away
    return out


def _faults(db: Database, school: str, lo: float, hi: float) -> dict[str, list[Fault]]:
    faults: dict[str, list[Fault]] = {}
    for r in db.query("SELECT device, code, severity, opened_t, cleared_t, review, review_from, review_to "
                      "FROM faults WHERE school = ? AND review <> 'rejected' AND COALESCE(review_from, opened_t) < ? "
                      "AND (COALESCE(review_to, cleared_t) IS NULL OR COALESCE(review_to, cleared_t) > ?)",
                      (school, hi, lo)):
        faults.setdefault(r["device"], []).append(Fault(r["code"], r["severity"], r["opened_t"], r["cleared_t"],
                                                        r["review"], r["review_from"], r["review_to"]))
    return faults


def compute_day_outside(db: Database, model: SchoolModel, d: date, now: float) -> tuple[list[LessonUsage], Outside]:
    """Every lesson of a date attributed from the stored events and faults (no writes), plus each
    classroom device's use outside its class's lessons (课外使用)."""
    _plan, lessons = lessons_on(model, d)
    if not lessons:
        return [], {}
    day_lo, day_hi = day_bounds(d, model.tz)
    devices: dict[str, list[str]] = {}
    rooms: dict[str, set[str]] = {}
    for r in db.query("SELECT device, class, room FROM devices WHERE school = ? AND class IS NOT NULL",
                      (model.school,)):
        devices.setdefault(r["class"], []).append(r["device"])
        if r["room"]:
            rooms.setdefault(r["class"], set()).add(r["room"])
    away = _away(db, model, d, lessons, rooms)
    last_end = max(ls.end_t for ls in lessons)
    events = _device_events(db, model.school, day_lo - MARGIN_BEFORE_S, max(last_end + MARGIN_AFTER_S, day_hi))
    faults = _faults(db, model.school, day_lo, day_hi)
    hb = float(model.settings["heartbeat_s"])
    per_device = {name: (in_use_intervals(evs, hb), sorted([e.t for e in evs])) for name, evs in events.items()}
    out = []
    for lesson in lessons:
        devs: list[str | None] = list(devices.get(lesson.klass, [])) or [None]
        best: LessonUsage | None = None
        for dev in devs:  # a class with several devices: the best-used one counts
            ivs, seen = per_device.get(dev, ([], [])) if dev else ([], [])
            u = attribute(lesson, dev, ivs, seen, faults.get(dev, []) if dev else [],
                          float(model.settings["min_use_minutes"]), now, bool(model.settings["exclude_faulty"]),
                          away.get((lesson.klass, lesson.period)))
            if best is None or (u.used, u.in_use_s) > (best.used, best.in_use_s):
                best = u
        assert best is not None
        out.append(best)
    taught: dict[str, list[Interval]] = {}  # class -> spans of its lessons taught in the classroom
    for ls in lessons:
        if (ls.klass, ls.period) not in away:
            taught.setdefault(ls.klass, []).append((ls.start_t, ls.end_t))
    outside = {dev: (klass, outside_lessons(per_device[dev][0], taught.get(klass, []), day_lo, day_hi))
               for klass, devs in devices.items() for dev in devs if dev in per_device}
    return out, {dev: v for dev, v in outside.items() if v[1]}


COLUMNS = ("school", "date", "class", "period", "week", "teacher", "subject", "is_substitute", "start_t", "end_t",
           "device", "in_use_s", "used", "counted", "status", "faults", "awaiting", "note")
OUTSIDE_COLUMNS = ("school", "date", "device", "class", "seconds", "spans")
INSERT = f"INSERT INTO lesson_usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
INSERT_OUTSIDE = f"INSERT INTO outside_use ({', '.join(OUTSIDE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class Day:
    """One computed day as the rollup stores it (rows as tuples of COLUMNS / OUTSIDE_COLUMNS, compact in
    the cache), and the times between which it holds (lessons end)."""
    lessons: list[tuple[Any, ...]]
    outside: list[tuple[Any, ...]]
    since: float  # the last lesson end at or before the time it was computed for
    until: float | None  # the first lesson end after it (None: every lesson had ended)
    version: Hashable = None  # computed in memory: the day's version it was computed for (live_day)

    def lesson_rows(self) -> list[Row]:
        return [dict(zip(COLUMNS, r, strict=True)) for r in self.lessons]

    def outside_rows(self) -> list[Row]:
        return [dict(zip(OUTSIDE_COLUMNS, r, strict=True)) for r in self.outside]


def compute(db: Database, model: SchoolModel, d: date, now: float) -> Day:
    """A day's rollup rows (``lesson_usage`` / ``outside_use`` shaped) computed in memory."""
    usages, outside = compute_day_outside(db, model, d, now)
    ds, week, school = d.isoformat(), iso_week(d), model.school
    lessons = [(school, ds, u.lesson.klass, u.lesson.period, week, u.lesson.teacher, u.lesson.subject,
                int(u.lesson.substitute), u.lesson.start_t, u.lesson.end_t, u.device, u.in_use_s, int(u.used),
                int(u.counted), u.status, ",".join(u.faults) or None, int(u.awaiting_review), u.note) for u in usages]
    rows = [(school, ds, dev, klass, sum(e - s for s, e in spans),
             json.dumps([[round(s, 1), round(e, 1)] for s, e in spans]))
            for dev, (klass, spans) in sorted(outside.items())]
    ended, ahead = [u.lesson.end_t for u in usages if u.lesson.end_t <= now], [u.lesson.end_t for u in usages
                                                                                if u.lesson.end_t > now]
    return Day(lessons, rows, max(ended, default=float("-inf")), min(ahead, default=None))


def store_day(db: Database, school: str, d: date, now: float | None = None,
              model: SchoolModel | None = None) -> Day:
    """Recompute and store one day of one school (the job's write; never called by a read)."""
    now = time.time() if now is None else now
    model = model or load_model(db, school)
    ds = d.isoformat()
    with db.transaction():
        # lock the day's row first: two refreshes of one day (the job, a publication) take turns
        db.execute("INSERT INTO usage_days (school, date, dirty) VALUES (?, ?, 0) "
                   "ON CONFLICT (school, date) DO UPDATE SET dirty = usage_days.dirty", (school, ds))
        seen_dirty = int(db.query("SELECT dirty FROM usage_days WHERE school = ? AND date = ?",
                                  (school, ds))[0]["dirty"])
        fmax = db.query("SELECT MAX(id) AS m FROM faults WHERE school = ?", (school,))[0]["m"] or 0
        day = compute(db, model, d, now)
        db.execute("DELETE FROM lesson_usage WHERE school = ? AND date = ?", (school, ds))
        db.execute("DELETE FROM outside_use WHERE school = ? AND date = ?", (school, ds))
        db.executemany(INSERT_OUTSIDE, day.outside)
        db.executemany(INSERT, day.lessons)
        db.execute("INSERT INTO usage_days (school, date, dirty, computed, valid_until, faults_seen, lessons) "
                   "VALUES (?, ?, 0, ?, ?, ?, ?) ON CONFLICT (school, date) DO UPDATE SET "
                   "dirty = CASE WHEN usage_days.dirty > ? THEN usage_days.dirty - ? ELSE 0 END, "
                   "computed = excluded.computed, valid_until = excluded.valid_until, "
                   "faults_seen = excluded.faults_seen, lessons = excluded.lessons",
                   (school, ds, now, day.until, fmax, len(day.lessons), seen_dirty, seen_dirty))
    return day


def _versions(db: Database, school: str) -> tuple[int, str]:
    """(the school's newest fault id, its model version: changed by imports and settings)."""
    fmax = db.query("SELECT MAX(id) AS m FROM faults WHERE school = ?", (school,))[0]["m"] or 0
    rows = db.query("SELECT usage_version FROM schools WHERE school = ?", (school,))
    return int(fmax), str(rows[0]["usage_version"] if rows else "")


def is_stale(r: Row | None, now: float, fmax: int, overlaps: Callable[[], bool] = lambda: True) -> bool:
    """A stored day must be recomputed: no row, marked dirty, a lesson ended since it was computed, or
    a fault registered since that ``overlaps`` the day (without the check: any newer fault)."""
    if r is None or r["dirty"] or (r["valid_until"] is not None and now >= r["valid_until"]):
        return True
    return fmax > r["faults_seen"] and overlaps()


def stale_days(db: Database, school: str, days: list[date], now: float | None = None) -> list[date]:
    """Which of these days up to today must be recomputed (the one freshness rule: ``is_stale``)."""
    return sorted(_states(db, school, days, time.time() if now is None else now)[0])


def _states(db: Database, school: str, days: list[date], now: float) -> tuple[dict[date, Hashable], list[date]]:
    """({stale day: its version}, fresh days) of these days up to today."""
    today = today_at(db, school, now)
    days = sorted(d for d in set(days) if d <= today)
    if not days:
        return {}, []
    rows = {r["date"]: r for r in db.query(
        "SELECT date, dirty, computed, valid_until, faults_seen FROM usage_days WHERE school = ? AND date >= ? "
        "AND date <= ?", (school, days[0].isoformat(), days[-1].isoformat()))}
    fmax, model_version = _versions(db, school)
    tz = school_tz(db, school)
    stale: dict[date, Hashable] = {}
    fresh = []
    for d in days:
        r = rows.get(d.isoformat())
        if is_stale(r, now, fmax, _overlaps(db, school, d, tz, r)):
            stale[d] = (db.url, school, d, r and r["dirty"], r and r["computed"], fmax, model_version)
        else:
            fresh.append(d)
    return stale, fresh


def _overlaps(db: Database, school: str, d: date, tz: Any, r: Row | None) -> Callable[[], bool]:
    """Whether a fault registered since the day was stored overlaps it (asked only when needed)."""
    def check() -> bool:
        lo, hi = day_bounds(d, tz)
        return r is not None and bool(db.query("SELECT 1 AS x FROM faults WHERE school = ? AND id > ? AND opened_t < ? "
                                                "AND (cleared_t IS NULL OR cleared_t > ?)",
                                                (school, r["faults_seen"], hi, lo)))
    return check


_live: OrderedDict[Hashable, Day] = OrderedDict()
_live_lock = threading.Lock()
# Days being computed, by (store, school, date): a read that comes meanwhile takes that result instead of
# computing the day again side by side (a boot storm dirties today between any two page views).
_flights: dict[Hashable, tuple[float, Future[Day]]] = {}
JOIN_WITHIN_S = 5.0  # a read joins a computation for a "now" at most this far from its own


def live_day(db: Database, d: date, version: Hashable, now: float, model: Callable[[], SchoolModel]) -> Day:
    """A stale day computed in memory, from the cache when computed for the same version of the day
    and a time between the same lesson ends, or from a computation of the day already under way."""
    key = version[:3] if isinstance(version, tuple) else version
    with _live_lock:
        hit = _live.get(version)
        if hit is not None and hit.since <= now and (hit.until is None or now < hit.until):
            _live.move_to_end(version)
            return hit
        flight = _flights.get(key)
        joined, mine = (flight[1] if flight and abs(flight[0] - now) <= JOIN_WITHIN_S else None), Future[Day]()
        if joined is None:
            _flights[key] = (now, mine)
    if joined is not None:
        return joined.result()
    try:
        day = replace(compute(db, model(), d, now), version=version)
    except BaseException as e:
        mine.set_exception(e)
        raise
    finally:
        with _live_lock:
            if _flights.get(key, (0, None))[1] is mine:
                del _flights[key]
    mine.set_result(day)
    with _live_lock:
        _live[version] = day
        while len(_live) > LIVE_DAYS:
            _live.popitem(last=False)
    return day


def live_days(db: Database, school: str, days: list[date], now: float | None = None) -> tuple[dict[date, Day],
                                                                                             list[date]]:
    """({stale day: its rows computed in memory}, fresh days) of these days up to today."""
    now = time.time() if now is None else now
    stale, fresh = _states(db, school, days, now)
    models: list[SchoolModel] = []

    def model() -> SchoolModel:
        if not models:
            models.append(load_model(db, school))
        return models[0]
    return {d: live_day(db, d, v, now, model) for d, v in stale.items()}, fresh


def refresh_days(db: Database, school: str, days: list[date], now: float | None = None, limit: int | None = None,
                 ) -> list[date]:
    """Store the stale ones of these days (newest first, at most ``limit``); returns them."""
    now = time.time() if now is None else now
    todo = stale_days(db, school, days, now)[::-1][:limit]
    model = load_model(db, school) if todo else None
    for d in todo:
        store_day(db, school, d, now, model)
    return todo


def days_between(start: date, end: date) -> list[date]:
    """Every date from start to end, both included."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _where(school: str, start: date, end: date, stale: Any, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    where, params = ["school = ?", "date >= ?", "date <= ?"], [school, start.isoformat(), end.isoformat()]
    if stale:
        where.append(f"date NOT IN ({', '.join('?' for _ in stale)})")
        params += [d.isoformat() for d in sorted(stale)]
    for col, value in filters.items():
        if isinstance(value, list):
            where.append(f"{col} IN ({', '.join('?' for _ in value) or 'NULL'})")
            params += value
        elif value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    return " AND ".join(where), params


def _wanted(row: Row, filters: dict[str, Any]) -> bool:
    return all(v is None or (row[c] in v if isinstance(v, list) else row[c] == v) for c, v in filters.items())


def rollup_rows(db: Database, school: str, start: date, end: date, now: float | None = None,
                **filters: Any) -> list[Row]:
    """``lesson_usage`` rows of [start, end] by date, class and period, current without writing: stale
    days are computed in memory. ``filters``: column=value or column=[values] (teacher=, class_=)."""
    filters = {k.rstrip("_"): v for k, v in filters.items()}
    live, _fresh = live_days(db, school, days_between(start, end), now)
    where, params = _where(school, start, end, live, filters)
    rows = db.query(f"SELECT {', '.join(COLUMNS)} FROM lesson_usage WHERE {where}", params)
    rows += [r for day in live.values() for r in day.lesson_rows() if _wanted(r, filters)]
    return sorted(rows, key=lambda r: (r["date"], r["class"], int(r["period"])))


def outside_rows(db: Database, school: str, start: date, end: date, now: float | None = None,
                 device: str | None = None) -> list[Row]:
    """``outside_use`` rows of [start, end] by date and device, current without writing."""
    live, _fresh = live_days(db, school, days_between(start, end), now)
    where, params = _where(school, start, end, live, {"device": device})
    rows = db.query(f"SELECT {', '.join(OUTSIDE_COLUMNS)} FROM outside_use WHERE {where}", params)
    rows += [r for day in live.values() for r in day.outside_rows() if _wanted(r, {"device": device})]
    return sorted(rows, key=lambda r: (r["date"], r["device"]))


SUMS = ("SUM(counted) AS s, SUM(used) AS u, SUM(CASE WHEN counted = 0 THEN 1 ELSE 0 END) AS x, "
        "SUM(CASE WHEN counted = 1 THEN awaiting ELSE 0 END) AS w")


def sums(db: Database, school: str, start: date, end: date, by: str, now: float | None = None,
         classes: list[str] | None = None) -> dict[str, list[int]]:
    """{teacher or class: [counted, used, excluded, awaiting review]} over [start, end] (pending lessons
    left out): summed in SQL over fresh days, in memory over stale ones."""
    live, _fresh = live_days(db, school, days_between(start, end), now)
    where, params = _where(school, start, end, live, {"class": classes})
    out = {r["k"]: [int(r["s"] or 0), int(r["u"] or 0), int(r["x"] or 0), int(r["w"] or 0)] for r in db.query(
        f"SELECT {by} AS k, {SUMS} FROM lesson_usage WHERE {where} AND status <> 'pending' GROUP BY {by}", params)}
    for day in live.values():
        for r in day.lesson_rows():
            if r["status"] == "pending" or (classes is not None and r["class"] not in classes):
                continue
            a = out.setdefault(r[by], [0, 0, 0, 0])
            a[0], a[1] = a[0] + r["counted"], a[1] + r["used"]
            a[2], a[3] = a[2] + (0 if r["counted"] else 1), a[3] + (r["awaiting"] if r["counted"] else 0)
    return out
