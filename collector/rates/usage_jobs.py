"""Scheduled usage work in the server process (APScheduler): the daily patrol record after the
day's last lesson, and the weekly publication at a set time.

Every ``TICK_MINUTES`` the tick looks at each school with a timetable:
* refresh: the stale days of the current term (collector.rates.usage_rollup.stale_days) are stored again,
  newest first and at most ``REFRESH_DAYS`` a school a tick (reads compute stale days in memory
  and never write, so this job is what keeps the stored roll-up current);
* daily: once the last lesson of today has ended ``patrol_after_minutes`` ago (default 15), the
  day is recomputed and its patrol record (巡课登记) stored — once a day; yesterday's is made too
  if the server was down at that time;
* weekly: the school setting ``publish_weekly`` ("7 20:00" = Sunday 20:00, the default; null turns
  automatic publication off) says when the current ISO week is published (frozen). A week whose
  time passed less than two days ago and is not yet published is published at the next tick.
"""
from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from typing import Any, Callable

from collector.db import Database, connect
from collector.devices.registry import school_settings, school_tz
from collector.lessons.school_calendar import iso_week
from collector.lessons.timetable import lessons_on
from collector.rates import usage
from collector.rates.usage_report import make_patrol, publish_week, review_warning
from collector.rates.usage_rollup import days_between

log = logging.getLogger(__name__)
TICK_MINUTES = 5
DEFAULT_PUBLISH = "7 20:00"
CATCH_UP_S = 2 * 86400
REFRESH_DAYS = 30  # days stored per school per tick: bounded work (a term after an import takes a few ticks)


def publish_time(spec: str, week_monday: date, tz: Any) -> datetime:
    """'7 20:00' -> that week's Sunday at 20:00 local time. ValueError when malformed."""
    wd, hm = spec.split()
    h, m = hm.split(":")
    day = week_monday + timedelta(days=int(wd) - 1)
    if not 1 <= int(wd) <= 7:
        raise ValueError(spec)
    return datetime(day.year, day.month, day.day, int(h), int(m), tzinfo=tz)


def _patrol_due(db: Database, school: str, day: date, now: float, after_s: float) -> bool:
    if db.query("SELECT 1 AS x FROM usage_patrols WHERE school = ? AND date = ?", (school, day.isoformat())):
        return False
    _plan, lessons = lessons_on(usage.load_model(db, school), day)
    return bool(lessons) and now >= max(ls.end_t for ls in lessons) + after_s


def tick(db: Database, now: float | None = None) -> list[str]:
    """One round of the scheduled work; returns what it did (for logs and tests)."""
    now = time.time() if now is None else now
    done: list[str] = []
    schools = [r["school"] for r in db.query("SELECT DISTINCT school FROM timetable ORDER BY school")]
    for school in schools:
        try:
            done += _tick_school(db, school, now)
        except Exception:  # one school's problem must not stop the others
            log.exception("usage tick failed for %s", school)
    return done


def _tick_school(db: Database, school: str, now: float) -> list[str]:
    done = []
    tz = school_tz(db, school)
    cfg = school_settings(db, school)
    today = datetime.fromtimestamp(now, tz).date()
    after_s = float(cfg.get("patrol_after_minutes", 15)) * 60
    _name, start, end = usage.term_span(db, school, today, now)
    stored = usage.refresh_days(db, school, days_between(start, end), now, REFRESH_DAYS)
    if stored:
        done.append(f"refresh {school} {len(stored)} days")
    for day in (today - timedelta(days=1), today):
        if _patrol_due(db, school, day, now, after_s):
            make_patrol(db, school, day, now)
            done.append(f"patrol {school} {day}")
    spec = cfg.get("publish_weekly", DEFAULT_PUBLISH)
    if spec:
        this_monday = today - timedelta(days=today.isoweekday() - 1)
        for monday in (this_monday - timedelta(days=7), this_monday):
            week = iso_week(monday)
            at = publish_time(str(spec), monday, tz).timestamp()
            if at <= now < at + CATCH_UP_S and usage.published(db, school, week) is None:
                warning = review_warning(publish_week(db, school, week, "schedule", now))
                if warning:
                    log.warning("usage: published %s %s: %s", school, week, warning)
                done.append(f"publish {school} {week}" + (f" ({warning})" if warning else ""))
    return done


def install(server: Any) -> Callable[[], None]:
    """Server.started hook: start the scheduler; returns its stopper."""
    from apscheduler.schedulers.background import BackgroundScheduler

    from collector.lease import Lease

    db = connect(server.opts.db_url)
    sched = BackgroundScheduler(daemon=True)
    lease = Lease(db, "usage")  # several servers on one store (district): one makes patrols and reports

    def run() -> None:
        if not lease.held():
            return
        for line in tick(db):
            log.info("usage: %s", line)

    sched.add_job(run, "interval", minutes=TICK_MINUTES, next_run_time=datetime.now() + timedelta(seconds=20),
                  id="usage-tick", max_instances=1, coalesce=True)
    sched.start()

    def stop() -> None:
        sched.shutdown(wait=True)
        lease.release()
        db.close()
    return stop
