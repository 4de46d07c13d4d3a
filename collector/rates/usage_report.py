"""The daily patrol record (巡课登记) and the weekly report (一周一汇总，一周一公布).

A published week is frozen: its report (rates and every lesson) is stored as JSON in
``usage_published`` and served from there from then on, whatever is imported later.
"""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any

from collector.db import Database
from collector.devices.registry import school_tz
from collector.lessons.attribution import COUNTED_SEVERITIES, NEVER_EXCUSES, STATUS_ZH
from collector.lessons.school_calendar import week_days
from collector.lessons.timetable import lessons_on
from collector.rates import certainty, usage

WEEKDAY_ZH = "一二三四五六日"
KIND_ZH = {"holiday": "节假日，不排课", "exam": "考试，不计课时", "vacation": "假期（学期外）"}


def _school_name(db: Database, school: str) -> str:
    rows = db.query("SELECT name FROM schools WHERE school = ?", (school,))
    return (rows[0]["name"] if rows and rows[0]["name"] else school)


def week_notes(db: Database, school: str, week: str) -> list[str]:
    """Calendar notes for the report: holidays, make-up days, exam days, missing holiday data."""
    return day_notes(db, school, week_days(week))


def day_notes(db: Database, school: str, days: list[date]) -> list[str]:
    """Calendar notes for these days (see week_notes)."""
    model = usage.load_model(db, school)
    notes: list[str] = []
    for d in days:
        plan, _ = lessons_on(model, d)
        label = f"{d.month}月{d.day}日（周{WEEKDAY_ZH[d.isoweekday() - 1]}）"
        if plan.kind in KIND_ZH and d.isoweekday() <= 5:
            notes.append(f"{label}{KIND_ZH[plan.kind]}")
        elif plan.kind == "workday" and plan.weekday and plan.weekday != d.isoweekday():
            notes.append(f"{label}调休上课，按周{WEEKDAY_ZH[plan.weekday - 1]}课表")
        if plan.note and plan.note not in notes:
            notes.append(plan.note)
    return notes


def lesson_counts(lessons: list[dict[str, Any]]) -> dict[str, int]:
    """A report's lesson figures: left out as faulty, left out of the denominator at all, and counted
    lessons that a pending fault register entry covers (awaiting review)."""
    return {"excluded_faulty": sum(1 for r in lessons if r["status"] == "faulty" and not r["counted"]),
            "excluded": sum(1 for r in lessons if r["status"] != "pending" and not r["counted"]),
            "awaiting_review": sum(1 for r in lessons if r["counted"] and r.get("awaiting_review"))}


def weekly_report(db: Database, school: str, week: str, now: float | None = None) -> dict[str, Any]:
    """The week's report: published (frozen) if it was published, else computed now."""
    frozen = usage.published(db, school, week)
    if frozen is not None:
        return frozen
    days = week_days(week)
    s = usage.settings(db, school)
    teachers = usage.week_rates(db, school, week, "teacher", now)
    classes = usage.week_rates(db, school, week, "class", now)
    lessons = [r for d in days for r in usage.day_lessons(db, school, d, now)]
    return {
        "school": school, "school_name": _school_name(db, school), "week": week,
        "start": days[0].isoformat(), "end": days[-1].isoformat(),
        "threshold": usage.threshold(db, school), "min_use_minutes": float(s["min_use_minutes"]),
        "exclude_faulty": bool(s["exclude_faulty"]),
        "generated": time.time() if now is None else now, "published": None,
        "teachers": teachers, "classes": classes, "lessons": lessons,
        **lesson_counts(lessons),
        "pending_reviews": len(pending_entries(db, school, week, now)),
        "corrections": [],
        "notes": week_notes(db, school, week),
    }


def pending_entries(db: Database, school: str, week: str, now: float | None = None) -> list[int]:
    """Ids of the fault register entries awaiting review (待核实) that cover a lesson of the week
    counted as measured (collector.lessons.attribution: only a confirmed entry excuses lessons)."""
    days = week_days(week)
    tz = school_tz(db, school)
    lo = datetime(days[0].year, days[0].month, days[0].day, tzinfo=tz).timestamp()
    marks = ", ".join("?" for _ in NEVER_EXCUSES)
    faults = db.query(f"SELECT id, device, opened_t, cleared_t FROM faults WHERE school = ? AND review = 'pending' "
                      f"AND severity IN (?, ?) AND code NOT IN ({marks}) AND opened_t < ? "
                      f"AND (cleared_t IS NULL OR cleared_t > ?)",
                      (school, *COUNTED_SEVERITIES, *NEVER_EXCUSES, lo + 7 * 86400, lo))
    waiting = [r for r in usage.rollup_rows(db, school, days[0], days[-1], now) if r["awaiting"] and r["counted"]]
    return sorted({int(f["id"]) for f in faults for w in waiting if w["device"] == f["device"]
                   and f["opened_t"] < w["end_t"] and (f["cleared_t"] is None or f["cleared_t"] > w["start_t"])})


def review_warning(report: dict[str, Any]) -> str | None:
    """The publication's warning when lessons of the week still await a fault review, else None."""
    n = int(report.get("awaiting_review") or 0)
    if not n:
        return None
    return (f"{report['week']}：{n} 节课所在时段有待核实的故障登记（{report.get('pending_reviews', 0)} 条），"
            "按实际测量计入；核实后将以更正形式记录")


MAX_RANGE_DAYS = 400  # a school year and a bit: longer ranges are refused (a typo'd year, not a report)
YEARS = (2000, 2099)


def _check_year(d: date, what: str) -> date:
    if not YEARS[0] <= d.year <= YEARS[1]:
        raise ValueError(f"{what} {d.isoformat()} is not between {YEARS[0]} and {YEARS[1]}")
    return d


def parse_range(start: str, end: str) -> tuple[date, date]:
    """FROM and TO (YYYY-MM-DD, both included) of a date-range report; ValueError names what is wrong."""
    days = []
    for name, raw in (("from", start), ("to", end)):
        try:
            d = date.fromisoformat(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name} {raw!r} is not a date YYYY-MM-DD") from None
        days.append(_check_year(d, name))
    if days[1] < days[0]:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    if (days[1] - days[0]).days >= MAX_RANGE_DAYS:
        raise ValueError(f"the range {start} to {end} is longer than {MAX_RANGE_DAYS} days")
    return days[0], days[1]


def parse_month(month: str) -> tuple[date, date]:
    """The first and last day of a month given as YYYY-MM (e.g. 2026-11)."""
    try:
        first = datetime.strptime(month, "%Y-%m").date()
    except (TypeError, ValueError):
        raise ValueError(f"month {month!r} is not YYYY-MM (e.g. 2026-11)") from None
    _check_year(first, "month")
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt - timedelta(days=1)


def range_lessons(db: Database, school: str, start: date, end: date, now: float | None = None) -> list[dict]:
    """Every lesson of [start, end] from the rollup with its certainty (collector.rates.certainty)."""
    heartbeat_s = float(usage.settings(db, school)["heartbeat_s"])
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in usage.lessons_between(db, school, start, end, now):
        by_day.setdefault(r["date"], []).append(r)
    out: list[dict[str, Any]] = []
    for rows in by_day.values():  # a day at a time: the device traces of one day in memory
        out += certainty.annotate(db, school, rows, school_tz(db, school), heartbeat_s, now)
    return out


def range_report(db: Database, school: str, start: date, end: date, now: float | None = None,
                 month: str | None = None) -> dict[str, Any]:
    """A report over any dates (教导处每月教学常规检查: a month) in the weekly report's shape, with
    ``range`` instead of ``week``. Rates come live from collector.rates.usage.range_rates (published weeks
    inside the range are recomputed, not read from their frozen copies)."""
    s = usage.settings(db, school)
    teachers = usage.range_rates(db, school, start, end, "teacher", now)
    classes = usage.range_rates(db, school, start, end, "class", now)
    lessons = range_lessons(db, school, start, end, now)
    return {
        "school": school, "school_name": _school_name(db, school), "range": month or f"{start} 至 {end}",
        "month": month, "start": start.isoformat(), "end": end.isoformat(),
        "threshold": usage.threshold(db, school), "min_use_minutes": float(s["min_use_minutes"]),
        "exclude_faulty": bool(s["exclude_faulty"]),
        "generated": time.time() if now is None else now, "published": None,
        "teachers": teachers, "classes": classes, "lessons": lessons,
        **lesson_counts(lessons),
        "notes": day_notes(db, school, [start + timedelta(days=i) for i in range((end - start).days + 1)]),
    }


def publish_week(db: Database, school: str, week: str, by: str | None = None,
                 now: float | None = None) -> dict[str, Any]:
    """Freeze and publish a week (一周一公布): its stale days are stored first (a write, like the job's),
    then its report frozen. Publishing again returns the first publication."""
    frozen = usage.published(db, school, week)
    if frozen is not None:
        return frozen
    now = time.time() if now is None else now
    with db.transaction():
        usage.refresh_days(db, school, week_days(week), now)
        report = weekly_report(db, school, week, now)
        report["published"] = now
        report["published_by"] = by
        db.execute("INSERT INTO usage_published (school, week, published, published_by, report) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (school, week) DO NOTHING",
                   (school, week, report["published"], by, json.dumps(report, ensure_ascii=False)))
    return usage.published(db, school, week) or report


def patrol_record(db: Database, school: str, day: date, now: float | None = None) -> dict[str, Any]:
    """The day's 巡课登记: every lesson with used / not used / device off / device faulty."""
    lessons = usage.day_lessons(db, school, day, now)
    counts: dict[str, int] = {}
    for r in lessons:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return {"school": school, "school_name": _school_name(db, school), "date": day.isoformat(),
            "lessons": lessons, "counts": counts, "made": time.time() if now is None else now}


def make_patrol(db: Database, school: str, day: date, now: float | None = None) -> dict[str, Any]:
    """Compute the day (the daily update) and store its patrol record."""
    usage.refresh_day(db, school, day, now)
    rec = patrol_record(db, school, day, now)
    db.execute("INSERT INTO usage_patrols (school, date, made, record) VALUES (?, ?, ?, ?) ON CONFLICT (school, date) "
               "DO UPDATE SET made = excluded.made, record = excluded.record",
               (school, day.isoformat(), rec["made"], json.dumps(rec, ensure_ascii=False)))
    return rec


def status_zh(status: str) -> str:
    return STATUS_ZH.get(status, status)


def pseudonymize(db: Database, name: str, pseudonym: str, school: str | None = None) -> int:
    """Replace a teacher's name inside the frozen reports and patrol records (JSON) — for
    collector.operations.retention.purge_teacher; returns how many documents changed."""
    changed = 0
    where, params = ("WHERE school = ?", [school]) if school else ("", [])
    for table, col, keys in (("usage_published", "report", ("school", "week")),
                             ("usage_patrols", "record", ("school", "date"))):
        for r in db.query(f"SELECT {', '.join(keys)}, {col} AS doc FROM {table} {where}", params):
            doc = json.loads(r["doc"])
            if not _rename(doc, name, pseudonym):
                continue
            db.execute(f"UPDATE {table} SET {col} = ? WHERE {keys[0]} = ? AND {keys[1]} = ?",
                       (json.dumps(doc, ensure_ascii=False), r[keys[0]], r[keys[1]]))
            changed += 1
    return changed


def _rename(doc: dict[str, Any], name: str, pseudonym: str) -> bool:
    hit = False
    for key in ("teachers", "lessons"):
        for row in doc.get(key, []):
            if row.get("teacher") == name:
                row["teacher"] = pseudonym
                hit = True
    return hit
