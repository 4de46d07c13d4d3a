"""Usage rates: the one owner of the rate, the threshold, trends and the freshness of the figures.

The module interface other areas use (dashboard, alerts, district, exports):

* ``week_rates(db, school, week, by)`` -> rows of protocol.md §4 (``by`` = "teacher" / "class");
  ``class_week_rates`` the same over one class's lessons;
* ``district_week_rates(db, week, by)`` -> {school: rows} for every school in a few queries;
* ``range_rates(db, school, start, end, by)`` for a day or a term; ``term_rates``, ``term_span``;
* ``below_threshold(db, school, week)`` -> {"teachers": [...], "classes": [...], "threshold"} (alerts);
* ``threshold(db, school)``, ``make_rate``, ``rates_of``, ``rates_from_lessons``, ``total``,
  ``overall_rate``: the one owner of the rate and of ``below_threshold`` (pages, API, exports and
  alerts all read them from here); ``trend`` / ``trend_of`` -> rate per key per week;
* ``day_lessons(db, school, day)`` -> rows of ``/api/v1/lessons``; ``lessons_between``,
  ``week_lessons`` the lessons of a span or a week (of one teacher or class);
* ``data_version`` changes whenever the figures of a span can have changed (pages cache by it).

Reads never write: days whose stored roll-up is stale are computed in memory
(collector.rates.usage_rollup, which also holds the freshness rule); the scheduled job
(collector.rates.usage_jobs) and a week's publication store them. Published weeks
(collector.rates.usage_report.publish_week) are served from their frozen copy.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from collector.db import Database
from collector.devices.registry import school_tz
from collector.lessons import usage_settings
from collector.lessons.attribution import STATUS_ZH, Lesson, LessonUsage
from collector.lessons.school_calendar import default_term, iso_week, term_of, week_days
from collector.lessons.timetable import lessons_on
from collector.rates import certainty, usage_rollup
from collector.rates.usage_rollup import (
    INSERT,
    compute_day_outside,
    load_model,
    refresh_days,
    rollup_rows,
    stale_days,
    today_at,
)
from collector.rates.usage_rollup import store_day as refresh_day

__all__ = ["INSERT", "compute_day_outside", "load_model", "refresh_day", "refresh_days", "rollup_rows",
           "stale_days", "today_at"]


def settings(db: Database, school: str) -> dict[str, Any]:
    """The school's usage settings with defaults (collector.lessons.usage_settings)."""
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


def range_rates(db: Database, school: str, start: date, end: date, by: str, now: float | None = None,
                classes: list[str] | None = None) -> list[dict[str, Any]]:
    """Rates per teacher or class over [start, end] (a day, a week, a term), live from the rollup."""
    if by not in ("teacher", "class"):
        raise ValueError(f"by must be teacher or class, not {by!r}")
    th = threshold(db, school)
    sums = usage_rollup.sums(db, school, start, end, by, now, classes)
    return [rate_dict(make_rate(k, s, u, th, x, w), by) for k, (s, u, x, w) in sorted(sums.items()) if s]


def week_rates(db: Database, school: str, week: str, by: str, now: float | None = None) -> list[dict[str, Any]]:
    """protocol.md §4 rows for an ISO week; a published week returns its frozen figures."""
    frozen = published(db, school, week)
    if frozen is not None:
        return list(frozen["teachers" if by == "teacher" else "classes"])
    days = week_days(week)
    return range_rates(db, school, days[0], days[-1], by, now)


def class_week_rates(db: Database, school: str, week: str, by: str, klass: str,
                     now: float | None = None) -> list[dict[str, Any]]:
    """week_rates over one class's lessons (a published week: from its frozen lessons and threshold)."""
    frozen = published(db, school, week)
    if frozen is not None:
        return rates_from_lessons([r for r in frozen["lessons"] if r["class"] == klass], by,
                                  float(frozen["threshold"]))
    days = week_days(week)
    return range_rates(db, school, days[0], days[-1], by, now, classes=[klass])


def term_span(db: Database, school: str, day: date, now: float | None = None) -> tuple[str, date, date]:
    """(name, start, end) of the term containing ``day`` (imported terms, else the default terms),
    the end cut to today."""
    t = term_of(day, load_model(db, school).terms) or default_term(day)
    return t.name, t.start, min(t.end, max(today_at(db, school, now), t.start))


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


def total(rows: Iterable[Mapping[str, Any]], key: str, threshold: float) -> Rate:
    """One rate over rate rows (the school's or a user's rows together)."""
    rows = list(rows)
    return make_rate(key, sum(int(r["scheduled"]) for r in rows), sum(int(r["used"]) for r in rows), threshold,
                     sum(int(r.get("excluded") or 0) for r in rows), sum(int(r.get("awaiting_review") or 0)
                                                                         for r in rows))


def overall_rate(rows: Iterable[Mapping[str, Any]]) -> float | None:
    """The rate over all these rate rows together, None when none counted."""
    r = total(rows, "", 0.0)
    return r.rate if r.scheduled else None


def trend_of(weeks: list[str], rows_by_week: Mapping[str, Iterable[Mapping[str, Any]]],
             by: str) -> dict[str, list[float | None]]:
    """{key: [rate or None per week]} from each week's rate rows (oldest first)."""
    out: dict[str, list[float | None]] = {}
    for i, w in enumerate(weeks):
        for r in rows_by_week[w]:
            out.setdefault(r[by], [None] * len(weeks))[i] = r["rate"]
    return out


def trend(db: Database, school: str, weeks: list[str], by: str, now: float | None = None) -> dict[str, list]:
    """{key: [rate or None per week]} over the given ISO weeks (oldest first)."""
    return trend_of(weeks, {w: week_rates(db, school, w, by, now) for w in weeks}, by)


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


def _lesson_rows(rows: list[dict[str, Any]], tz: Any) -> list[dict[str, Any]]:
    def hhmm(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%H:%M")
    return [lesson_row({**r, "start": hhmm(r["start_t"]), "end": hhmm(r["end_t"])}) for r in rows]


def lessons_between(db: Database, school: str, start: date, end: date, now: float | None = None,
                    teacher: str | None = None, klass: str | None = None) -> list[dict[str, Any]]:
    """The lessons of [start, end] that range_rates counts, as lesson_row rows by date and time, of one
    teacher and / or class if given (live: not from published weeks' frozen copies)."""
    rows = rollup_rows(db, school, start, end, now, teacher=teacher or None, class_=klass or None)
    rows.sort(key=lambda r: (r["date"], r["start_t"], r["class"]))
    return _lesson_rows(rows, school_tz(db, school))


def week_lessons(db: Database, school: str, week: str, teacher: str | None = None, klass: str | None = None,
                 now: float | None = None) -> list[dict[str, Any]]:
    """A week's lessons of one teacher and / or class: a published week's frozen ones, else live."""
    frozen = published(db, school, week)
    if frozen is not None:
        return [r for r in frozen["lessons"] if (not teacher or r["teacher"] == teacher)
                and (not klass or r["class"] == klass)]
    days = week_days(week)
    return lessons_between(db, school, days[0], days[-1], now, teacher, klass)


def day_lessons(db: Database, school: str, day: date, now: float | None = None) -> list[dict[str, Any]]:
    """One row per lesson of the date (protocol.md §4 lessons plus status, counted, substitute, device, faults)."""
    frozen = published(db, school, iso_week(day))
    if frozen is not None:
        return [r for r in frozen["lessons"] if r["date"] == day.isoformat()]
    tz = school_tz(db, school)
    rows = rollup_rows(db, school, day, day, now)
    if not rows and day > today_at(db, school, now):
        return [{"date": ls.date, "class": ls.klass, "period": ls.period, "teacher": ls.teacher,
                 "subject": ls.subject, "start": ls.start, "end": ls.end, "in_use_minutes": 0.0, "used": False,
                 "status": "pending", "status_zh": STATUS_ZH["pending"], "counted": False,
                 "substitute": ls.substitute, "device": None, "faults": [], "awaiting_review": False, "note": None}
                for ls in lessons_on(load_model(db, school), day)[1]]
    # how certain each figure is: measured / device offline / agent gap (trust: collector.rates.certainty)
    return certainty.annotate(db, school, _lesson_rows(rows, tz), tz, float(settings(db, school)["heartbeat_s"]),
                              now)


def data_version(db: Database, school: str, start: date, end: date, week: str | None = None,
                 now: float | None = None) -> tuple[Any, ...]:
    """Changes whenever the figures of [start, end] can have changed: a day marked or stored (ingest, an
    import, a fault, the job), a lesson ending in a day computed in memory, the settings, the week's
    publication."""
    live, _fresh = usage_rollup.live_days(db, school, usage_rollup.days_between(start, end), now)
    r = db.query("SELECT MAX(computed) AS c, COUNT(*) AS n, SUM(dirty) AS d FROM usage_days "
                 "WHERE school = ? AND date >= ? AND date <= ?", (school, start.isoformat(), end.isoformat()))[0]
    pub = db.query("SELECT published FROM usage_published WHERE school = ? AND week = ?", (school, week or ""))
    return (r["c"], r["n"], r["d"], tuple((d, day.version, day.since, day.until) for d, day in sorted(live.items())),
            json.dumps(settings(db, school), sort_keys=True), pub[0]["published"] if pub else None)


def district_week_rates(db: Database, week: str, by: str, now: float | None = None) -> dict[str, list[dict]]:
    """Weekly rates of every school at once (district view): {school: protocol.md §4 rows}.

    A handful of queries whatever the number of schools: the schools whose week is fresh are summed in
    one query, the others school by school (their stale days computed in memory); published weeks come
    from their frozen copies."""
    if by not in ("teacher", "class"):
        raise ValueError(f"by must be teacher or class, not {by!r}")
    now = time.time() if now is None else now
    days = week_days(week)
    schools = [r["school"] for r in db.query("SELECT DISTINCT school FROM timetable ORDER BY school")]
    frozen = {r["school"]: r["report"] for r in db.query("SELECT school, report FROM usage_published WHERE week = ?",
                                                          (week,))}
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for r in db.query("SELECT school, date, dirty, valid_until, faults_seen FROM usage_days "
                      "WHERE date >= ? AND date <= ?", (days[0].isoformat(), days[-1].isoformat())):
        state.setdefault(r["school"], {})[r["date"]] = r
    fmax = {r["school"]: r["m"] for r in db.query("SELECT school, MAX(id) AS m FROM faults GROUP BY school")}
    info = {r["school"]: r for r in db.query("SELECT school, tz, settings FROM schools")}
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in schools}
    live = set()
    for s in schools:
        today = datetime.fromtimestamp(now, ZoneInfo(info[s]["tz"] if s in info else "Asia/Shanghai")).date()
        if s not in frozen and any(d <= today and usage_rollup.is_stale(state.get(s, {}).get(d.isoformat()), now,
                                                                         fmax.get(s) or 0) for d in days):
            out[s] = range_rates(db, s, days[0], days[-1], by, now)
            live.add(s)
    default = float(usage_settings.DEFAULTS["threshold"])
    thresholds = {s: float(json.loads(r["settings"] or "{}").get("threshold", default)) for s, r in info.items()}
    for r in db.query(f"SELECT school, {by} AS k, {usage_rollup.SUMS} FROM lesson_usage "
                      f"WHERE week = ? AND status <> 'pending' GROUP BY school, {by} ORDER BY school, {by}", (week,)):
        if r["school"] in frozen or r["school"] in live or not r["s"]:
            continue
        rate = make_rate(r["k"], int(r["s"]), int(r["u"]), thresholds.get(r["school"], default), int(r["x"]),
                         int(r["w"]))
        out.setdefault(r["school"], []).append(rate_dict(rate, by))
    for s, report in frozen.items():
        out[s] = list(normalized(json.loads(report))["teachers" if by == "teacher" else "classes"])
    return out
