"""Reads of the usage figures never write (issue 21): every GET of the usage API and pages runs on a
store that refuses writes (SQLite: an authorizer; PostgreSQL: read-only transactions), stale days are
computed in memory and equal what the job stores, and the job's refresh is bounded."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from collector.db import Database
from collector.lessons.usage_marks import mark_dates
from collector.rates import outside_use, usage, usage_rollup
from collector.rates.usage_jobs import REFRESH_DAYS, tick
from dashboard.users import create_token
from tests.dash import make_app
from tests.test_usage_week import EXPECTED_TEACHERS, FRI, MON, THU, S, confirm_display_missing, import_school, script
from tests.usage_script import ingest

W = "2026-W19"
TZ = ZoneInfo("Asia/Shanghai")
SAT_EVENING = datetime(2026, 5, 9, 18, 0, tzinfo=TZ).timestamp()
USAGE_TABLES = ("lesson_usage", "usage_days", "outside_use", "usage_published", "usage_patrols")
API = [f"/api/v1/usage/teachers?school={S}&week={W}", f"/api/v1/usage/classes?school={S}&week={W}",
       f"/api/v1/usage/teachers?school={S}&date={THU}", f"/api/v1/usage/classes?school={S}&term={THU}",
       f"/api/v1/usage/teachers?school={S}&from={MON}&to={FRI}", f"/api/v1/lessons?school={S}&date={THU}",
       f"/api/v1/usage/trend?school={S}&week={W}&weeks=3&by=class", f"/api/v1/usage/outside?school={S}&date={THU}",
       f"/api/v1/usage/report?school={S}&week={W}", f"/api/v1/usage/report?school={S}&week={W}&format=html",
       f"/api/v1/usage/report?school={S}&week={W}&format=csv", f"/api/v1/usage/report?school={S}&month=2026-05",
       f"/api/v1/usage/report?school={S}&from={MON}&to={FRI}&format=xlsx"]
PAGES = [f"/usage/teachers?school={S}&week={W}", f"/usage/classes?school={S}&week={W}",
         f"/usage/teachers?school={S}&week={W}&period=term", f"/usage/classes?school={S}&from={MON}&to={FRI}",
         f"/usage/lessons?school={S}&week={W}&teacher=王", f"/usage/lessons?school={S}&date={THU}",
         f"/usage/outside?school={S}&date={THU}", f"/usage/export.xlsx?school={S}&week={W}",
         f"/usage/export.csv?school={S}&month=2026-05", f"/usage/print?school={S}&week={W}",
         f"/usage/publish?school={S}&week={W}", f"/?school={S}"]


def usage_counts(db: Database) -> dict[str, int]:
    return {t: int(db.query(f"SELECT COUNT(*) AS n FROM {t} WHERE school = ?", (S,))[0]["n"]) for t in USAGE_TABLES}


def stored_week(db: Database) -> int:
    return int(db.query("SELECT COUNT(*) AS n FROM lesson_usage WHERE school = ? AND week = ?", (S, W))[0]["n"])


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    """The s19 week ingested (its days marked, none stored) and the dashboard on the same store."""
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)
    db.execute("INSERT INTO users (name, role, school, class, must_change, created) VALUES (?, ?, ?, ?, 0, 0)",
               ("boss", "headteacher", S, None))
    token = create_token(db, "boss")
    app = make_app(db.url)
    client = app.test_client()

    def get(path: str) -> Any:
        r = client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (path, r.status_code, r.data[:300])
        return r
    yield app, get
    app.extensions["bbt_db"].close()


def refuse_writes(app: Any) -> list[str]:
    """Make the app's store refuse every write of this thread (the test client's requests run here);
    returns the list the refused statements' tables are added to."""
    store = app.extensions["bbt_db"]
    refused: list[str] = []
    if store.dialect == "sqlite":
        def authorizer(action: int, arg1: str | None, *_: Any) -> int:
            if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE):
                refused.append(str(arg1))
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        store._conn().set_authorizer(authorizer)
    else:  # every statement of this connection runs in a read-only transaction
        store._conn().execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    return refused


def test_every_usage_get_is_read_only_on_sqlite(site: Any, db: Database) -> None:
    if db.dialect != "sqlite":
        pytest.skip("the authorizer is SQLite's; PostgreSQL: test_usage_gets_read_only_on_postgresql")
    app, get = site
    before = usage_counts(db)
    assert before["lesson_usage"] == 0 and before["usage_days"] > 0  # marked by ingest, nothing stored yet
    refused = refuse_writes(app)
    teachers = get(API[0]).get_json()
    assert [(r["teacher"], r["scheduled"], r["used"]) for r in teachers] == [t[:3] for t in EXPECTED_TEACHERS]
    assert len(get(f"/api/v1/lessons?school={S}&date={FRI}").get_json()) == 6
    for path in API + PAGES:
        get(path)
    assert refused == [] and usage_counts(db) == before


def test_usage_gets_read_only_on_postgresql(site: Any, db: Database) -> None:
    if db.dialect == "sqlite":
        pytest.skip("PostgreSQL's read-only transactions; SQLite: test_every_usage_get_is_read_only_on_sqlite")
    app, get = site
    before = usage_counts(db)
    refuse_writes(app)
    teachers = get(API[0]).get_json()
    assert [(r["teacher"], r["scheduled"], r["used"]) for r in teachers] == [t[:3] for t in EXPECTED_TEACHERS]
    for path in (API[3], API[5], API[8], PAGES[0], PAGES[4]):
        get(path)
    assert usage_counts(db) == before


def figures(db: Database) -> dict[str, Any]:
    days = [date.fromisoformat(MON) + timedelta(days=i) for i in range(7)]
    return {"teachers": usage.week_rates(db, S, W, "teacher"), "classes": usage.week_rates(db, S, W, "class"),
            "term": usage.term_rates(db, S, date.fromisoformat(THU), "class", SAT_EVENING),
            "district": usage.district_week_rates(db, W, "teacher"),
            "lessons": [usage.day_lessons(db, S, d) for d in days],
            "between": usage.lessons_between(db, S, days[0], days[-1], teacher="王"),
            "outside": [outside_use.day_rows(db, S, d) for d in days],
            "device": outside_use.device_rows(db, S, "pc1", days[-1])}


def test_stale_read_equals_the_stored_day_after_the_job(db: Database, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)
    live = figures(db)
    assert usage_counts(db)["lesson_usage"] == 0  # all of that computed in memory
    assert [(r["teacher"], r["scheduled"], r["used"], r["excluded"]) for r in live["teachers"]] == EXPECTED_TEACHERS
    # the job: the term's stale days (1 Feb .. Saturday), at most REFRESH_DAYS a tick, newest first
    done = tick(db, SAT_EVENING)
    assert done[0] == f"refresh {S} {REFRESH_DAYS} days"
    assert usage_rollup.stale_days(db, S, [date(2026, 5, 9) - timedelta(days=i) for i in range(REFRESH_DAYS)],
                                   SAT_EVENING) == []
    while any(line.startswith("refresh") for line in tick(db, SAT_EVENING)):
        pass
    assert usage_rollup.stale_days(db, S, usage_rollup.days_between(date(2026, 2, 1), date(2026, 5, 9)),
                                   SAT_EVENING) == []
    assert stored_week(db) == 24  # 6 lessons a day on the 4 school days of the week (劳动节 holidays)
    assert figures(db) == live


def test_live_days_are_cached_by_version_and_time(db: Database, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    thu = date.fromisoformat(THU)
    after = datetime(2026, 5, 7, 12, 0, tzinfo=TZ).timestamp()
    first, _fresh = usage_rollup.live_days(db, S, [thu], after)
    again, _fresh = usage_rollup.live_days(db, S, [thu], after + 60)
    assert again[thu] is first[thu]  # a cache hit: same version, no lesson ended in between
    mark_dates(db, S, [THU])  # e.g. an event arrived
    marked, _fresh = usage_rollup.live_days(db, S, [thu], after + 60)
    assert marked[thu] is not first[thu] and marked[thu].lessons == first[thu].lessons
    during = datetime(2026, 5, 7, 8, 45, tzinfo=TZ).timestamp()  # period 1 ended, 2 and 3 not yet
    early, _fresh = usage_rollup.live_days(db, S, [thu], during)
    assert early[thu] is not marked[thu]
    assert [r["status"] for r in early[thu].lesson_rows()].count("pending") == 4
    later, _fresh = usage_rollup.live_days(db, S, [thu], during + 60)
    assert later[thu] is early[thu]
    assert usage_counts(db)["lesson_usage"] == 0


def test_reads_of_a_day_being_computed_take_that_computation(db: Database, db_url: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Page views side by side while a storm keeps today stale: one computation of the day, not one each."""
    import threading

    from collector.db import connect

    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    thu, calls, real = date.fromisoformat(THU), [], usage_rollup.compute

    def slow_compute(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.5)  # long enough for the other readers to arrive while it runs
        return real(*args, **kwargs)
    monkeypatch.setattr(usage_rollup, "compute", slow_compute)
    after = datetime(2026, 5, 7, 12, 0, tzinfo=TZ).timestamp()
    results: list[Any] = []

    def read() -> None:
        own = connect(db_url)
        try:
            results.append(usage_rollup.live_days(own, S, [thu], after)[0][thu])
        finally:
            own.close()
    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
        time.sleep(0.05)
    for t in readers:
        t.join(30)
    assert len(results) == 4 and len(calls) == 1
    assert all(r is results[0] for r in results)
    mark_dates(db, S, [THU])  # the day changed after: the next read computes it again
    assert usage_rollup.live_days(db, S, [thu], after)[0][thu] is not results[0] and len(calls) == 2


def test_publishing_stores_the_week_first(db: Database, tmp_path: Path) -> None:
    from collector.rates.usage_report import publish_week

    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    live = usage.week_rates(db, S, W, "teacher")
    rep = publish_week(db, S, W, "boss", SAT_EVENING)
    assert rep["teachers"] == live
    days = usage_rollup.days_between(date.fromisoformat(MON), date(2026, 5, 10))
    assert usage_rollup.stale_days(db, S, days[:-1], SAT_EVENING) == []  # stored inside the publication
    assert stored_week(db) == 24

