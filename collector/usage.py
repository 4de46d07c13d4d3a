"""Usage rates from the store: the per-lesson rollup (``lesson_usage``) and rates over it.

The module interface other areas use (dashboard, alerts, district):

* ``week_rates(db, school, week, by)`` -> rows of protocol.md §4 (``by`` = "teacher" / "class");
* ``district_week_rates(db, week, by)`` -> {school: rows} for every school in a few queries;
* ``range_rates(db, school, start, end, by)`` for a day or a term; ``term_rates``;
* ``below_threshold(db, school, week)`` -> {"teachers": [...], "classes": [...], "threshold"} (alerts);
* ``threshold(db, school)``, ``make_rate``, ``rates_of``, ``rates_from_lessons``: the one owner of the
  rate and of ``below_threshold`` (pages, API, exports and alerts all read them from here);
* ``day_lessons(db, school, day)`` -> rows of ``/api/v1/lessons``;
* ``trend(db, school, weeks, by)`` -> rate per key per week;
* ``refresh_day`` / ``ensure_days`` keep the rollup current (a day is recomputed when it was
  marked dirty by ingest or an import, when lessons have ended since it was computed, or when
  a fault overlapping it was registered since).

Published weeks (collector.usage_report.publish_week) are served from their frozen copy.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from collector import certainty, usage_settings
from collector.attribution import STATUS_ZH, Ev, Fault, Interval, Lesson, LessonUsage, attribute, in_use_intervals
from collector.db import Database
from collector.lesson_marks import active_marks
from collector.lesson_place import away_of, outside_lessons
from collector.registry import school_tz
from collector.school_calendar import Term, default_term, iso_week, term_of, week_days
from collector.timetable import BellSet, SchoolModel, Slot, lessons_on

MARGIN_BEFORE_S = 2 * 3600  # events from 22:00 the evening before (a session started then)
MARGIN_AFTER_S = 3600  # ... to an hour after the last lesson (the end event of a session in it)


def settings(db: Database, school: str) -> dict[str, Any]:
    """The school's usage settings with defaults (collector.usage_settings)."""
    return usage_settings.get(db, school)


def threshold(db: Database, school: str) -> float:
    """The rate a teacher or class must reach each week (the school's setting, default 0.60)."""
    return float(settings(db, school)["threshold"])


@dataclass
class Rate:
    key: str
    scheduled: int
    used: int
    rate: float
    below_threshold: bool
    excluded: int = 0  # lessons left out of the denominator (a confirmed fault, ...)
    awaiting_review: int = 0  # counted lessons a pending fault entry covers (a review may change them)


def make_rate(key: str, scheduled: int, used: int, threshold: float, excluded: int = 0, awaiting: int = 0) -> Rate:
    """The only place a rate and ``below_threshold`` are computed."""
    rate = used / scheduled if scheduled else 0.0
    return Rate(key, scheduled, used, rate, rate < threshold, excluded, awaiting)


def rates_of(usages: Iterable[LessonUsage], by: str, threshold: float) -> list[Rate]:
    """Rates per teacher (by="teacher") or per class (by="class") from attributed lessons, sorted by
    key; keys with no counted lessons are left out."""
    return _aggregate(((u.lesson.teacher if by == "teacher" else u.lesson.klass, u.status, u.counted, u.used,
                        u.awaiting_review) for u in usages), threshold)


def rates_from_lessons(lessons: Iterable[Mapping[str, Any]], by: str, threshold: float) -> list[dict[str, Any]]:
    """protocol.md §4 rows from lesson rows (``day_lessons`` / a frozen report's lessons)."""
    return [rate_dict(r, by) for r in _aggregate(((r[by], r["status"], r["counted"], r["used"],
                                                   r.get("awaiting_review", False)) for r in lessons), threshold)]


def _aggregate(items: Iterable[tuple[str, str, Any, Any, Any]], threshold: float) -> list[Rate]:
    acc: dict[str, list[int]] = {}
    for key, status, counted, used, awaiting in items:
        if status == "pending":
            continue
        a = acc.setdefault(key, [0, 0, 0, 0])
        if counted:
            a[0] += 1
            a[1] += int(bool(used))
            a[3] += int(bool(awaiting))
        else:
            a[2] += 1
    return [make_rate(k, s, n, threshold, x, w) for k, (s, n, x, w) in sorted(acc.items()) if s]


def load_model(db: Database, school: str) -> SchoolModel:
    m = SchoolModel(school, school_tz(db, school), settings=settings(db, school))
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


def _day_bounds(d: date, model: SchoolModel) -> tuple[float, float]:
    start = datetime(d.year, d.month, d.day, tzinfo=model.tz).timestamp()
    nxt = d + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=model.tz).timestamp()


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


def compute_day(db: Database, model: SchoolModel, d: date, now: float) -> list[LessonUsage]:
    """Attribute every lesson of a date from the stored events and faults (no writes)."""
    return compute_day_outside(db, model, d, now)[0]


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


def compute_day_outside(db: Database, model: SchoolModel, d: date, now: float) -> tuple[list[LessonUsage], Outside]:
    """compute_day, plus each classroom device's use outside its class's lessons (课外使用)."""
    _plan, lessons = lessons_on(model, d)
    if not lessons:
        return [], {}
    day_lo, day_hi = _day_bounds(d, model)
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
    faults: dict[str, list[Fault]] = {}
    for r in db.query("SELECT device, code, severity, opened_t, cleared_t, review, review_from, review_to "
                      "FROM faults WHERE school = ? AND review <> 'rejected' AND COALESCE(review_from, opened_t) < ? "
                      "AND (COALESCE(review_to, cleared_t) IS NULL OR COALESCE(review_to, cleared_t) > ?)",
                      (model.school, day_hi, day_lo)):
        faults.setdefault(r["device"], []).append(Fault(r["code"], r["severity"], r["opened_t"], r["cleared_t"],
                                                        r["review"], r["review_from"], r["review_to"]))
    hb = float(model.settings["heartbeat_s"])
    per_device: dict[str, tuple[list[tuple[float, float]], list[float]]] = {}
    for name, evs in events.items():
        per_device[name] = (in_use_intervals(evs, hb), sorted([e.t for e in evs]))
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


INSERT = ("INSERT INTO lesson_usage (school, date, class, period, week, teacher, subject, is_substitute, start_t, "
          "end_t, device, in_use_s, used, counted, status, faults, awaiting, note) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
INSERT_OUTSIDE = "INSERT INTO outside_use (school, date, device, class, seconds, spans) VALUES (?, ?, ?, ?, ?, ?)"


def refresh_day(db: Database, school: str, d: date, now: float | None = None,
                model: SchoolModel | None = None) -> list[LessonUsage]:
    """Recompute and store one day of one school (the daily update)."""
    now = time.time() if now is None else now
    model = model or load_model(db, school)
    ds = d.isoformat()
    with db.transaction():
        # lock the day's row first: two refreshes of one day (API threads, the scheduler) take turns
        db.execute("INSERT INTO usage_days (school, date, dirty) VALUES (?, ?, 0) "
                   "ON CONFLICT (school, date) DO UPDATE SET dirty = usage_days.dirty", (school, ds))
        seen_dirty = int(db.query("SELECT dirty FROM usage_days WHERE school = ? AND date = ?",
                                  (school, ds))[0]["dirty"])
        fmax = db.query("SELECT MAX(id) AS m FROM faults WHERE school = ?", (school,))[0]["m"] or 0
        usages, outside = compute_day_outside(db, model, d, now)
        db.execute("DELETE FROM lesson_usage WHERE school = ? AND date = ?", (school, ds))
        db.execute("DELETE FROM outside_use WHERE school = ? AND date = ?", (school, ds))
        db.executemany(INSERT_OUTSIDE, [(school, ds, dev, klass, sum(e - s for s, e in spans),
                                         json.dumps([[round(s, 1), round(e, 1)] for s, e in spans]))
                                        for dev, (klass, spans) in sorted(outside.items())])
        week = iso_week(d)
        db.executemany(INSERT, [(school, ds, u.lesson.klass, u.lesson.period, week, u.lesson.teacher,
                                 u.lesson.subject, int(u.lesson.substitute), u.lesson.start_t, u.lesson.end_t,
                                 u.device, u.in_use_s, int(u.used), int(u.counted), u.status,
                                 ",".join(u.faults) or None, int(u.awaiting_review), u.note) for u in usages])
        pending = [u.lesson.end_t for u in usages if u.status == "pending"]
        db.execute("INSERT INTO usage_days (school, date, dirty, computed, valid_until, faults_seen, lessons) "
                   "VALUES (?, ?, 0, ?, ?, ?, ?) ON CONFLICT (school, date) DO UPDATE SET "
                   "dirty = CASE WHEN usage_days.dirty > ? THEN usage_days.dirty - ? ELSE 0 END, "
                   "computed = excluded.computed, valid_until = excluded.valid_until, "
                   "faults_seen = excluded.faults_seen, lessons = excluded.lessons",
                   (school, ds, now, min(pending) if pending else None, fmax, len(usages), seen_dirty, seen_dirty))
    return usages


def stale_days(db: Database, school: str, days: list[date], now: float) -> list[date]:
    """Which of these (past or current) days must be recomputed."""
    if not days:
        return []
    rows = {r["date"]: r for r in db.query(
        "SELECT date, dirty, valid_until, faults_seen FROM usage_days WHERE school = ? AND date >= ? AND date <= ?",
        (school, min(days).isoformat(), max(days).isoformat()))}
    fmax = db.query("SELECT MAX(id) AS m FROM faults WHERE school = ?", (school,))[0]["m"] or 0
    tz = school_tz(db, school)
    out = []
    for d in days:
        r = rows.get(d.isoformat())
        if r is None or r["dirty"] or (r["valid_until"] is not None and now >= r["valid_until"]):
            out.append(d)
        elif fmax > r["faults_seen"]:
            lo = datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()
            if db.query("SELECT 1 AS x FROM faults WHERE school = ? AND id > ? AND opened_t < ? "
                        "AND (cleared_t IS NULL OR cleared_t > ?)", (school, r["faults_seen"], lo + 86400, lo)):
                out.append(d)
    return out


def ensure_days(db: Database, school: str, days: list[date], now: float | None = None) -> int:
    """Bring the rollup of these days up to date (days after today are skipped); returns days recomputed."""
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, school_tz(db, school)).date()
    todo = stale_days(db, school, [d for d in days if d <= today], now)
    model = load_model(db, school) if todo else None
    for d in todo:
        refresh_day(db, school, d, now, model)
    return len(todo)


def published(db: Database, school: str, week: str) -> dict[str, Any] | None:
    """A published week's frozen report (its figures as published) with the corrections made since."""
    rows = db.query("SELECT report FROM usage_published WHERE school = ? AND week = ?", (school, week))
    if not rows:
        return None
    return with_corrections(db, school, week, normalized(json.loads(rows[0]["report"])))


def normalized(report: dict[str, Any]) -> dict[str, Any]:
    """Reports frozen before v1.1 have ``excluded_faulty`` rows only: give them the current keys."""
    for key in ("teachers", "classes"):
        for r in report.get(key, []):
            r.setdefault("excluded", r.get("excluded_faulty", 0))
            r.setdefault("awaiting_review", 0)
    report.setdefault("excluded", report.get("excluded_faulty", 0))
    report.setdefault("awaiting_review", 0)
    return report


def with_corrections(db: Database, school: str, week: str, report: dict[str, Any]) -> dict[str, Any]:
    report["corrections"] = [{"t": r["t"], "by": r["by_user"], "fault_id": int(r["fault_id"]), "review": r["review"],
                              **json.loads(r["detail"])}
                             for r in db.query("SELECT * FROM usage_corrections WHERE school = ? AND week = ? "
                                               "ORDER BY t, id", (school, week))]
    return report


def rate_dict(r: Rate, by: str) -> dict[str, Any]:
    return {by: r.key, "scheduled": r.scheduled, "used": r.used, "rate": r.rate,
            "below_threshold": r.below_threshold, "excluded": r.excluded, "awaiting_review": r.awaiting_review}


SUMS = ("SUM(counted) AS s, SUM(used) AS u, SUM(CASE WHEN counted = 0 THEN 1 ELSE 0 END) AS x, "
        "SUM(CASE WHEN counted = 1 THEN awaiting ELSE 0 END) AS w")


def range_rates(db: Database, school: str, start: date, end: date, by: str, now: float | None = None,
                classes: list[str] | None = None) -> list[dict[str, Any]]:
    """Rates per teacher or class over [start, end] (a day, a week, a term), live from the rollup."""
    if by not in ("teacher", "class"):
        raise ValueError(f"by must be teacher or class, not {by!r}")
    ensure_days(db, school, [start + timedelta(days=i) for i in range((end - start).days + 1)], now)
    th = threshold(db, school)
    where, params = "school = ? AND date >= ? AND date <= ? AND status <> 'pending'", [school, start.isoformat(),
                                                                                       end.isoformat()]
    if classes is not None:
        where += f" AND class IN ({', '.join('?' for _ in classes) or 'NULL'})"
        params += classes
    rows = db.query(f"SELECT {by} AS k, {SUMS} FROM lesson_usage WHERE {where} GROUP BY {by} ORDER BY {by}", params)
    return [rate_dict(make_rate(r["k"], int(r["s"]), int(r["u"]), th, int(r["x"]), int(r["w"])), by)
            for r in rows if r["s"]]


def week_rates(db: Database, school: str, week: str, by: str, now: float | None = None) -> list[dict[str, Any]]:
    """protocol.md §4 rows for an ISO week; a published week returns its frozen figures."""
    frozen = published(db, school, week)
    if frozen is not None:
        return list(frozen["teachers" if by == "teacher" else "classes"])
    days = week_days(week)
    return range_rates(db, school, days[0], days[-1], by, now)


def term_span(db: Database, school: str, day: date, now: float | None = None) -> tuple[str, date, date]:
    """(name, start, end) of the term containing ``day`` (imported terms, else the default terms),
    the end cut to today."""
    t = term_of(day, load_model(db, school).terms) or default_term(day)
    today = datetime.fromtimestamp(time.time() if now is None else now, school_tz(db, school)).date()
    return t.name, t.start, min(t.end, max(today, t.start))


def term_rates(db: Database, school: str, day: date, by: str, now: float | None = None) -> dict[str, Any]:
    """Rates over the term containing ``day`` up to today: {"term", "start", "end", "rows"}."""
    name, start, end = term_span(db, school, day, now)
    return {"term": name, "start": start.isoformat(), "end": end.isoformat(),
            "rows": range_rates(db, school, start, end, by, now)}


def below_threshold(db: Database, school: str, week: str, now: float | None = None) -> dict[str, Any]:
    """Teachers and classes under the school's threshold for the week (for alerts at week's end), and the
    threshold they were measured against (a published week: the one it was published with)."""
    frozen = published(db, school, week)
    return {"teachers": [r for r in week_rates(db, school, week, "teacher", now) if r["below_threshold"]],
            "classes": [r for r in week_rates(db, school, week, "class", now) if r["below_threshold"]],
            "threshold": float(frozen["threshold"]) if frozen else threshold(db, school)}


def trend(db: Database, school: str, weeks: list[str], by: str, now: float | None = None) -> dict[str, list]:
    """{key: [rate or None per week]} over the given ISO weeks (oldest first)."""
    out: dict[str, list[float | None]] = {}
    for i, w in enumerate(weeks):
        for r in week_rates(db, school, w, by, now):
            out.setdefault(r[by], [None] * len(weeks))[i] = r["rate"]
    return out


def find_lesson(db: Database, school: str, day: date, klass: str, period: int) -> Lesson | None:
    """The lesson the timetable and calendar schedule for (day, class, period), or None."""
    for ls in lessons_on(load_model(db, school), day)[1]:
        if ls.klass == klass and ls.period == period:
            return ls
    return None


def lesson_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"date": r["date"], "class": r["class"], "period": int(r["period"]), "teacher": r["teacher"],
            "subject": r["subject"], "start": r["start"], "end": r["end"],
            "in_use_minutes": round(float(r["in_use_s"]) / 60.0, 1), "used": bool(r["used"]),
            "status": r["status"], "status_zh": STATUS_ZH.get(r["status"], r["status"]),
            "counted": bool(r["counted"]), "substitute": bool(r["is_substitute"]),
            "device": r["device"], "faults": r["faults"].split(",") if r["faults"] else [],
            "awaiting_review": bool(r.get("awaiting")), "note": r.get("note")}


def day_lessons(db: Database, school: str, day: date, now: float | None = None) -> list[dict[str, Any]]:
    """One row per lesson of the date (protocol.md §4 lessons plus status, counted, substitute, device, faults)."""
    frozen = published(db, school, iso_week(day))
    if frozen is not None:
        return [r for r in frozen["lessons"] if r["date"] == day.isoformat()]
    ensure_days(db, school, [day], now)
    tz = school_tz(db, school)
    rows = db.query("SELECT * FROM lesson_usage WHERE school = ? AND date = ? ORDER BY class, period",
                    (school, day.isoformat()))
    if not rows and day > datetime.fromtimestamp(time.time() if now is None else now, tz).date():
        model = load_model(db, school)
        return [{"date": ls.date, "class": ls.klass, "period": ls.period, "teacher": ls.teacher,
                 "subject": ls.subject, "start": ls.start, "end": ls.end, "in_use_minutes": 0.0, "used": False,
                 "status": "pending", "status_zh": STATUS_ZH["pending"], "counted": False,
                 "substitute": ls.substitute, "device": None, "faults": [], "awaiting_review": False, "note": None}
                for ls in lessons_on(model, day)[1]]
    for r in rows:
        r["start"] = datetime.fromtimestamp(r["start_t"], tz).strftime("%H:%M")
        r["end"] = datetime.fromtimestamp(r["end_t"], tz).strftime("%H:%M")
    # how certain each figure is: measured / device offline / agent gap (trust: collector.certainty)
    return certainty.annotate(db, school, [lesson_row(r) for r in rows], tz,
                              float(settings(db, school)["heartbeat_s"]), now)


def district_week_rates(db: Database, week: str, by: str, now: float | None = None) -> dict[str, list[dict]]:
    """Weekly rates of every school at once (district view): {school: protocol.md §4 rows}.

    A handful of queries whatever the number of schools: stale days are found in one query and
    recomputed school by school; published weeks come from their frozen copies."""
    if by not in ("teacher", "class"):
        raise ValueError(f"by must be teacher or class, not {by!r}")
    now = time.time() if now is None else now
    days = week_days(week)
    lo, hi = days[0].isoformat(), days[-1].isoformat()
    schools = [r["school"] for r in db.query("SELECT DISTINCT school FROM timetable ORDER BY school")]
    frozen = {r["school"]: r["report"] for r in db.query("SELECT school, report FROM usage_published WHERE week = ?",
                                                          (week,))}
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for r in db.query("SELECT school, date, dirty, valid_until, faults_seen FROM usage_days "
                      "WHERE date >= ? AND date <= ?", (lo, hi)):
        state.setdefault(r["school"], {})[r["date"]] = r
    fmax = {r["school"]: r["m"] for r in db.query("SELECT school, MAX(id) AS m FROM faults GROUP BY school")}
    info = {r["school"]: r for r in db.query("SELECT school, tz, settings FROM schools")}
    for s in schools:
        if s in frozen:
            continue
        today = datetime.fromtimestamp(now, ZoneInfo(info[s]["tz"] if s in info else "Asia/Shanghai")).date()
        rows = state.get(s, {})
        if any(d <= today and (d.isoformat() not in rows or rows[d.isoformat()]["dirty"]
                               or (rows[d.isoformat()]["valid_until"] or now + 1) <= now
                               or (fmax.get(s) or 0) > rows[d.isoformat()]["faults_seen"]) for d in days):
            ensure_days(db, s, days, now)
    default = float(usage_settings.DEFAULTS["threshold"])
    thresholds = {s: float(json.loads(r["settings"] or "{}").get("threshold", default)) for s, r in info.items()}
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in schools}
    for r in db.query(f"SELECT school, {by} AS k, {SUMS} FROM lesson_usage "
                      f"WHERE week = ? AND status <> 'pending' GROUP BY school, {by} ORDER BY school, {by}", (week,)):
        if r["school"] in frozen or not r["s"]:
            continue
        rate = make_rate(r["k"], int(r["s"]), int(r["u"]), thresholds.get(r["school"], default), int(r["x"]),
                         int(r["w"]))
        out.setdefault(r["school"], []).append(rate_dict(rate, by))
    for s, report in frozen.items():
        out[s] = list(normalized(json.loads(report))["teachers" if by == "teacher" else "classes"])
    return out
