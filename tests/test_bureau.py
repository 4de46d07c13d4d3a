"""Multi-school tenancy: the bureau (区县教育局) sees every school side by side; a school's users see only
their school (both backends)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

import protocol
from collector.devices.ingest import Incoming, prepare
from collector.devices.registry import ensure_school
from collector.intake.store import apply_batch
from collector.rates import district
from collector.school.imports import run_import
from dashboard.users import UserError, add_user, create_token
from tests.dash import make_app
from tests.usage_script import DeviceScript, at

DAY = "2026-11-16"  # Monday of 2026-W47
WEEK = "2026-W47"


def setup_school(db, tmp: Path, school: str, name: str, lessons_used: int, fault: bool) -> None:  # type: ignore[no-untyped-def]
    ensure_school(db, school, name, "Asia/Shanghai")
    files = {"devices": "device,class\npc1,1班\n", "bell": "period,start,end\n1,08:00,08:40\n2,08:50,09:30\n",
             "timetable": "class,weekday,period,teacher,subject\n1班,1,1,张老师,语文\n1班,1,2,李老师,数学\n"}
    for kind, text in files.items():
        path = tmp / f"{school}-{kind}.csv"
        path.write_text(text, encoding="utf-8")
        run_import(db, kind, school, path)
    s = DeviceScript("pc1").power_on(DAY, "07:50")
    for start, end in [("08:01", "08:35"), ("08:51", "09:25")][:lessons_used]:
        s.session(DAY, start, end)
    s.heartbeats(DAY, "07:55", "09:40")
    if fault:
        s._add("fault", at(DAY, "10:00"),
               {"code": "display_missing", "severity": "warning", "state": "raised", "detail": "投影无信号"})
    msg = Incoming(protocol.events_topic(school, "pc1"), protocol.dumps(s.events), time.time(), qos=1)
    res = apply_batch(db, [prepare(msg)])
    assert res.stored == len(s.events)


@pytest.fixture
def two_schools(db, tmp_path: Path):  # type: ignore[no-untyped-def]
    setup_school(db, tmp_path, "s1", "第一中学", 2, False)
    setup_school(db, tmp_path, "s2", "第二小学", 1, True)
    return db


def test_compare_schools(two_schools) -> None:  # type: ignore[no-untyped-def]
    rows = district.compare_schools(two_schools, WEEK)
    assert [(r["school"], r["name"], r["scheduled"], r["used"], r["rate"], r["classes_below"], r["faults_week"],
             r["faults_open"], r["devices"]) for r in rows] == [
        ("s1", "第一中学", 2, 2, 1.0, 0, 0, 0, 1),
        ("s2", "第二小学", 2, 1, 0.5, 1, 1, 1, 1)]
    assert [r["school"] for r in district.compare_schools(two_schools, WEEK, ["s2"])] == ["s2"]
    with pytest.raises(ValueError, match="ISO week"):
        district.compare_schools(two_schools, "2026-48")


def test_bureau_sees_all_schools_a_school_only_itself(two_schools) -> None:  # type: ignore[no-untyped-def]
    db = two_schools
    add_user(db, "区教育局", "bureau", "bureau-pass-1", must_change=False)
    add_user(db, "一中管理员", "admin", "admin-pass-1", school="s1", must_change=False)
    add_user(db, "二小校长", "headteacher", "head-pass-1", school="s2", must_change=False)
    with pytest.raises(UserError, match="leave out --school"):
        add_user(db, "x", "bureau", "bureau-pass-1", school="s1")
    tok = {n: create_token(db, n) for n in ("区教育局", "一中管理员", "二小校长")}
    app = make_app(db.url)
    try:
        c = app.test_client()

        def get(path: str, who: str):  # type: ignore[no-untyped-def]
            return c.get(path, headers={"Authorization": f"Bearer {tok[who]}"})

        r = get(f"/api/v1/district/schools?week={WEEK}", "区教育局")
        assert r.status_code == 200
        assert [(x["school"], x["rate"]) for x in r.get_json()] == [("s1", 1.0), ("s2", 0.5)]
        r = get(f"/api/v1/district/schools?week={WEEK}", "一中管理员")
        assert [x["school"] for x in r.get_json()] == ["s1"]
        assert get(f"/api/v1/district/schools?week={WEEK}", "二小校长").status_code == 403
        bad = get("/api/v1/district/schools?week=bad", "区教育局")
        assert bad.status_code == 400 and "ISO week" in bad.get_json()["message"]
        # the bureau reads any school's contract endpoints; a school's users only their own
        assert get(f"/api/v1/usage/classes?school=s2&week={WEEK}", "区教育局").get_json()[0]["rate"] == 0.5
        assert get("/api/v1/devices?school=s1", "区教育局").status_code == 200
        assert get("/api/v1/devices?school=s1", "二小校长").status_code == 403
        assert get("/api/v1/devices?school=s2", "一中管理员").status_code == 403
        page = get(f"/district?week={WEEK}", "区教育局")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and "各校对比" in html and "第二小学" in html and "50.0%" in html
    finally:
        app.extensions["bbt_db"].close()
