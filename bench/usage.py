"""Usage-rate benchmark: weekly rates for a district, and the daily update of one school.

    .venv/bin/python bench/usage.py [--schools 50] [--classes 40] [--db PATH_OR_URL]

District: ``schools × classes`` classes (default 50 × 40 = 2,000), 8 lessons a day Monday to
Friday (40 a week), over one autumn term (2026-09-01 .. 2027-01-15, the real holiday calendar).
Every lesson of the term goes through the real attribution (collector.lessons.attribution.attribute) from
synthetic in-use intervals and is stored in the ``lesson_usage`` rollup with the same INSERT as
the daily update. Measured: the weekly rates (teachers and classes, protocol.md §4 rows) of every
school for week 2026-W48 through the public ``collector.rates.usage.week_rates`` (freshness check
included), and all schools at once through ``collector.rates.usage.district_week_rates`` (a few queries in all).

Daily update: school s000 also gets one term of raw events at agent density (a heartbeat every
60 s from 07:30 to 17:30 and a session per used lesson: about 2.3 million events), and
``collector.rates.usage.refresh_day`` (load the school model, read the day's events and faults,
attribute every lesson, rewrite the day's rollup: the scheduled job's write) is timed for one school
day, beside the pure reads of that day: a stale day computed in memory (a cache miss of
``collector.rates.usage_rollup.live_day``), the same read again (a cache hit) and the read of the stored day.

Writes bench/results/usage.json and usage.md. Targets: weekly district rates <= 1 s, daily
update of one school <= 200 ms.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector import migrations  # noqa: E402
from collector.db import Database, connect  # noqa: E402
from collector.devices.registry import ensure_school  # noqa: E402
from collector.lessons.attribution import attribute  # noqa: E402
from collector.lessons.school_calendar import iso_week  # noqa: E402
from collector.lessons.timetable import lessons_on  # noqa: E402
from collector.rates import usage  # noqa: E402
from collector.school.imports import run_import  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TZ = ZoneInfo("Asia/Shanghai")
TERM = (date(2026, 9, 1), date(2027, 1, 15))
WEEK = "2026-W48"
BELL = [("08:00", "08:40"), ("08:50", "09:30"), ("09:50", "10:30"), ("10:40", "11:20"),
        ("14:00", "14:40"), ("14:50", "15:30"), ("15:40", "16:20"), ("16:30", "17:10")]
SUBJECTS = ["语文", "数学", "英语", "物理", "化学", "历史", "地理", "生物"]
TARGET_WEEK_S, TARGET_DAY_S = 1.0, 0.2


def timetable_lines(classes: int, class_name: Any, teacher_name: Any) -> list[str]:
    """A week of 8 periods for each class, subjects rotating, 4 teachers per pair of classes."""
    tt = ["class,weekday,period,teacher,subject"]
    for c in range(classes):
        for wd in range(1, 6):
            for p in range(1, 9):
                s = (wd + p + c) % len(SUBJECTS)
                tt.append(f"{class_name(c)},{wd},{p},{teacher_name((c // 2) * 4 + s % 4)},{SUBJECTS[s]}")
    return tt


def write_csvs(folder: Path, devices: list[str], timetable: list[str]) -> dict[str, Path]:
    """devices.csv, bell.csv (BELL) and timetable.csv in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bell = ["period,start,end"] + [f"{i + 1},{a},{b}" for i, (a, b) in enumerate(BELL)]
    files = {}
    for kind, lines in (("devices", devices), ("bell", bell), ("timetable", timetable)):
        files[kind] = folder / f"{kind}.csv"
        files[kind].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files


def write_school(folder: Path, school: str, classes: int) -> dict[str, Path]:
    dev = ["device,class"] + [f"{school}-pc{c:02d},{c}班" for c in range(classes)]
    tt = timetable_lines(classes, lambda c: f"{c}班", lambda t: f"{school}-T{t:03d}")
    return write_csvs(folder, dev, tt)


def term_days() -> list[date]:
    return [TERM[0] + timedelta(days=i) for i in range((TERM[1] - TERM[0]).days + 1)]


def fill_rollup(db: Database, school: str, rng: random.Random, now: float) -> int:
    """Every lesson of the term through the real attribution, stored like the daily update stores it."""
    model = usage.load_model(db, school)
    use_prob = {s.teacher: rng.choice((0.9, 0.8, 0.7, 0.5, 0.3)) for s in model.slots}
    rows: list[tuple[Any, ...]] = []
    days: list[tuple[Any, ...]] = []
    for d in term_days():
        _plan, lessons = lessons_on(model, d)
        for ls in lessons:
            if rng.random() < use_prob[ls.teacher]:
                a = ls.start_t + rng.randint(0, 300)
                ivs = [(a, min(ls.end_t, a + rng.randint(300, 2400)))]
            else:
                ivs = []
            u = attribute(ls, f"{school}-pc", ivs, [ls.start_t + 60.0], [], 10.0, now)
            rows.append((school, ls.date, ls.klass, ls.period, iso_week(d), ls.teacher, ls.subject, 0, ls.start_t,
                         ls.end_t, u.device, u.in_use_s, int(u.used), int(u.counted), u.status, None, 0, u.note))
        days.append((school, d.isoformat(), now, len(lessons)))
    with db.transaction():
        db.executemany(usage.INSERT, rows)
        db.executemany("INSERT INTO usage_days (school, date, dirty, computed, valid_until, faults_seen, lessons) "
                       "VALUES (?, ?, 0, ?, NULL, 0, ?)", days)
    return len(rows)


def fill_events(db: Database, school: str, classes: int, rng: random.Random) -> int:
    """One term of raw events for one school at agent density; returns how many."""
    model = usage.load_model(db, school)
    total = 0
    sql = ("INSERT INTO events (school, device, id, seq, type, ts, t, received, data, clock_fault) "
           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)")
    seqs = {c: 0 for c in range(classes)}
    for d in term_days():
        _plan, lessons = lessons_on(model, d)
        if not lessons:
            continue
        by_class: dict[str, list[Any]] = {}
        for ls in lessons:
            by_class.setdefault(ls.klass, []).append(ls)
        day0 = datetime(d.year, d.month, d.day, 7, 30, tzinfo=TZ).timestamp()
        batch: list[tuple[Any, ...]] = []
        for c in range(classes):
            dev = f"{school}-pc{c:02d}"
            sessions = []
            for ls in by_class.get(f"{c}班", []):
                if rng.random() < 0.7:
                    a = ls.start_t + rng.randint(0, 240)
                    sessions.append((a, ls.end_t - rng.randint(0, 360)))
            evs: list[tuple[float, str, str]] = [(day0, "power", '{"state":"on","clean":true}')]
            for a, b in sessions:
                sid = f"{dev}-{int(a)}"
                evs.append((a, "session", json.dumps({"state": "start", "session_id": sid})))
                evs.append((b, "session", json.dumps({"state": "end", "session_id": sid, "start": _ts(a),
                                                     "end": _ts(b), "active_s": int(b - a)})))
            t = day0 + 60
            si = 0
            while t < day0 + 10 * 3600:
                while si < len(sessions) and sessions[si][1] < t:
                    si += 1
                in_use = si < len(sessions) and sessions[si][0] <= t
                flag = "true" if in_use else "false"
                evs.append((t, "heartbeat", f'{{"in_use":{flag},"idle_s":10,"cpu_pct":5.0,"mem_pct":40.0,'
                            f'"disk_pct":60.0,"uptime_s":{int(t - day0)}}}'))
                t += 60
            evs.append((day0 + 10 * 3600, "power", '{"state":"off"}'))
            evs.sort()
            for t, typ, data in evs:
                seqs[c] += 1
                batch.append((school, dev, f"{dev}-{seqs[c]}", seqs[c], typ, _ts(t), t, t, data))
        with db.transaction():
            db.executemany(sql, batch)
        total += len(batch)
    return total


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, TZ).isoformat(timespec="seconds")


def timed(fn: Any, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


READS = {"stale": "stale: computed in memory, no write", "cached": "stale, again: cache hit",
         "stored": "fresh: the stored rows"}


def day_reads(db: Database, school: str, day: date, now: float, repeat: int) -> dict[str, list[float]]:
    """Pure reads of one day: stale (marked dirty first, so computed in memory), the same again (cached),
    and fresh (stored by the job's refresh_day)."""
    from collector.lessons.usage_marks import mark_dates

    stale: list[float] = []
    for _ in range(repeat):
        mark_dates(db, school, [day.isoformat()])
        stale += timed(lambda: usage.rollup_rows(db, school, day, day, now), 1)
    cached = timed(lambda: usage.rollup_rows(db, school, day, day, now), repeat)
    usage.refresh_day(db, school, day, now)
    return {"stale": stale, "cached": cached, "stored": timed(lambda: usage.rollup_rows(db, school, day, day, now),
                                                               repeat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schools", type=int, default=50)
    ap.add_argument("--classes", type=int, default=40)
    ap.add_argument("--db", default=None, help="store URL (default: a new SQLite file in a temporary folder)")
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bbt-bench-usage-"))
    url = args.db or str(tmp / "bench.db")
    db = connect(url)
    migrations.migrate(db)
    rng = random.Random(48)
    now = datetime(2027, 1, 20, 12, 0, tzinfo=TZ).timestamp()
    schools = [f"s{i:03d}" for i in range(args.schools)]
    t0 = time.perf_counter()
    lessons = 0
    for i, s in enumerate(schools):
        ensure_school(db, s)
        for kind, path in write_school(tmp / s, s, args.classes).items():
            run_import(db, kind, s, path)
        lessons += fill_rollup(db, s, rng, now)
        print(f"\rrollup: {i + 1}/{len(schools)} schools, {lessons:,} lessons", end="", file=sys.stderr, flush=True)
    build_rollup_s = time.perf_counter() - t0
    print(file=sys.stderr)
    t0 = time.perf_counter()
    n_events = fill_events(db, schools[0], args.classes, rng)
    build_events_s = time.perf_counter() - t0
    print(f"events: {n_events:,} for {schools[0]} in {build_events_s:.0f} s", file=sys.stderr)

    def district_api() -> None:
        for s in schools:
            usage.week_rates(db, s, WEEK, "teacher", now)
            usage.week_rates(db, s, WEEK, "class", now)

    def district_sql() -> None:
        for by in ("teacher", "class"):
            usage.district_week_rates(db, WEEK, by, now)

    db.execute("ANALYZE")  # as PostgreSQL's autovacuum (or SQLite's optimize) would after a bulk load
    rows_week = db.query("SELECT COUNT(*) AS n FROM lesson_usage WHERE week = ?", (WEEK,))[0]["n"]
    week_api = timed(district_api, args.repeat)
    week_sql = timed(district_sql, args.repeat)
    day = date(2026, 11, 25)
    usage.refresh_day(db, schools[0], day, now)  # warm-up: the day's pages into the cache
    day_update = timed(lambda: usage.refresh_day(db, schools[0], day, now), args.repeat)
    day_lessons = len(usage.day_lessons(db, schools[0], day, now))
    fresh_check = timed(lambda: usage.stale_days(db, schools[0], [day], now), args.repeat)
    reads = day_reads(db, schools[0], day, now, args.repeat)
    teachers = usage.week_rates(db, schools[0], WEEK, "teacher", now)
    result = {
        "when": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
        "python": platform.python_version(), "cpus": os.cpu_count(), "backend": db.dialect,
        "schools": len(schools), "classes": len(schools) * args.classes, "lessons_per_week_per_class": 40,
        "term": [TERM[0].isoformat(), TERM[1].isoformat()], "rollup_lessons": lessons,
        "week": WEEK, "week_lessons": rows_week, "events_one_school": n_events,
        "build_rollup_s": round(build_rollup_s, 1), "build_events_s": round(build_events_s, 1),
        "weekly_rates_district_api_s": {"median": statistics.median(week_api), "max": max(week_api),
                                        "runs": week_api},
        "weekly_rates_district_sql_s": {"median": statistics.median(week_sql), "max": max(week_sql),
                                        "runs": week_sql},
        "daily_update_one_school_s": {"median": statistics.median(day_update), "max": max(day_update),
                                      "runs": day_update, "lessons": day_lessons},
        "freshness_check_one_day_s": {"median": statistics.median(fresh_check)},
        **{f"read_{k}_one_day_s": {"median": statistics.median(v), "max": max(v)} for k, v in reads.items()},
        "sample_teachers_s000": len(teachers), "load_average_at_end": os.getloadavg(),
        "targets": {"weekly_rates_district_s": TARGET_WEEK_S, "daily_update_one_school_s": TARGET_DAY_S},
    }
    result["pass"] = (min(result["weekly_rates_district_api_s"]["median"],
                          result["weekly_rates_district_sql_s"]["median"]) <= TARGET_WEEK_S
                      and result["daily_update_one_school_s"]["median"] <= TARGET_DAY_S)
    result["pass_at_max"] = (min(result["weekly_rates_district_api_s"]["max"],
                                 result["weekly_rates_district_sql_s"]["max"]) <= TARGET_WEEK_S
                             and result["daily_update_one_school_s"]["max"] <= TARGET_DAY_S)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "usage" if db.dialect == "sqlite" else f"usage_{db.dialect}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (RESULTS / f"{name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    db.close()


def markdown(r: dict[str, Any]) -> str:
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    w, d = r["weekly_rates_district_api_s"], r["daily_update_one_school_s"]
    q, f, t = r["weekly_rates_district_sql_s"], r["freshness_check_one_day_s"], r["targets"]
    table = "\n".join([
        "| measure | median | max | target |", "|---|---|---|---|",
        f"| weekly rates, teachers + classes, all {r['schools']} schools via `usage.week_rates` | {ms(w['median'])} "
        f"| {ms(w['max'])} | <= {ms(t['weekly_rates_district_s'])} |",
        f"| same, all schools at once via `usage.district_week_rates` | {ms(q['median'])} | {ms(q['max'])} "
        f"| <= {ms(t['weekly_rates_district_s'])} |",
        f"| daily update of one school ({d['lessons']} lessons; `usage.refresh_day`) | {ms(d['median'])} "
        f"| {ms(d['max'])} | <= {ms(t['daily_update_one_school_s'])} |",
        f"| freshness check of an up-to-date day (`usage.stale_days`) | {ms(f['median'])} | | |",
        *[f"| read of one day ({what}; `usage.rollup_rows`) | {ms(r[f'read_{k}_one_day_s']['median'])} "
          f"| {ms(r[f'read_{k}_one_day_s']['max'])} | |" for k, what in READS.items() if f"read_{k}_one_day_s" in r]])
    return f"""# Usage rates benchmark ({r['backend']})

`bench/usage.py`, {r['when']}, {r['machine']}, Python {r['python']}, {r['cpus']} CPUs
(load average at the end: {', '.join(f'{x:.1f}' for x in r['load_average_at_end'])} — other work shared the machine).

Dataset: {r['schools']} schools × {r['classes'] // r['schools']} classes = {r['classes']:,} classes, 40 lessons a week
each, term {r['term'][0]} .. {r['term'][1]} with the real holiday calendar: {r['rollup_lessons']:,} lessons
attributed and stored in the `lesson_usage` rollup ({r['week_lessons']:,} in {r['week']}); one school also has the
term's raw events at agent density ({r['events_one_school']:,} events: heartbeat every 60 s, sessions).
Building took {r['build_rollup_s']} s (rollup) and {r['build_events_s']} s (events).

{table}

Result (medians against the targets): {'PASS' if r['pass'] else 'FAIL'}; every run within the targets:
{'yes' if r['pass_at_max'] else 'no'}. After one warm-up run of the daily update.

How: rates are read from the per-lesson rollup (one row per lesson, primary key
(school, date, class, period), index (week, school)); a day is stale only when ingest, an
import or a fault marked it (`usage_days`) or a lesson ended since: reads then compute it in memory
(cached by the day's version) and never write; the scheduled job stores it. Raw events are read per day through the
(school, type, t) index; heartbeats' `in_use` is read without parsing their JSON.
"""


if __name__ == "__main__":
    main()
