"""The usage API (protocol.md §4) with role scoping, the weekly report, publishing and freezing."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.rates import usage
from collector.rates.usage_report import publish_week
from collector.school.imports import run_import
from dashboard import create_app
from dashboard.users import create_token
from tests.test_usage_week import (
    EXPECTED_CLASSES,
    EXPECTED_TEACHERS,
    FRI,
    S,
    confirm_display_missing,
    import_school,
    script,
)
from tests.usage_script import ingest

W = "2026-W19"


@pytest.fixture
def api(db, tmp_path: Path):  # type: ignore[no-untyped-def]
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)  # the maintainer confirmed pc2's Thursday fault (protocol.md §3)
    tokens = {}
    users = (("boss", "headteacher", None), ("班主任甲", "class_teacher", "一班"), ("王", "teacher", None),
             ("修理工", "maintainer", None), ("root", "admin", None))
    for name, role, klass in users:
        db.execute("INSERT INTO users (name, role, school, class, must_change, created) VALUES (?, ?, ?, ?, 0, 0)",
                   (name, role, None if role == "admin" else S, klass))  # token-only users: no password hashing
        tokens[name] = create_token(db, name)
    app = create_app({"BBT_DB": db.url, "TESTING": True})
    client = app.test_client()

    def get(path: str, who: str = "boss", status: int = 200) -> Any:
        r = client.get(path, headers={"Authorization": f"Bearer {tokens[who]}"})
        assert r.status_code == status, (path, who, r.status_code, r.data[:300])
        return r.get_json() if r.is_json else r.data
    yield get
    app.extensions["bbt_db"].close()


def test_contract_endpoints_and_roles(api) -> None:  # type: ignore[no-untyped-def]
    teachers = api(f"/api/v1/usage/teachers?school={S}&week={W}")
    assert [(r["teacher"], r["scheduled"], r["used"]) for r in teachers] == [t[:3] for t in EXPECTED_TEACHERS]
    assert all(set(r) >= {"teacher", "scheduled", "used", "rate", "below_threshold"} for r in teachers)
    assert isinstance(teachers[2]["rate"], float) and teachers[2]["rate"] == 0.625
    classes = api(f"/api/v1/usage/classes?school={S}&week={W}", "root")
    assert [(r["class"], r["scheduled"], r["used"]) for r in classes] == [c[:3] for c in EXPECTED_CLASSES]
    lessons = api(f"/api/v1/lessons?school={S}&date={FRI}")
    assert len(lessons) == 6
    keys = {"class", "period", "teacher", "subject", "start", "end", "in_use_minutes", "used", "status"}
    assert all(keys <= set(r) for r in lessons)
    # a class teacher: their class only; the teachers' rates over that class's lessons
    assert [r["class"] for r in api(f"/api/v1/usage/classes?school={S}&week={W}", "班主任甲")] == ["一班"]
    ct = {r["teacher"]: (r["scheduled"], r["used"]) for r in api(f"/api/v1/usage/teachers?school={S}&week={W}",
                                                                 "班主任甲")}
    assert ct == {"王": (4, 3), "李": (4, 1), "张": (2, 0), "赵": (1, 1), "刘": (1, 0)}
    assert {r["class"] for r in api(f"/api/v1/lessons?school={S}&date={FRI}", "班主任甲")} == {"一班"}
    # a teacher: their own row and lessons
    assert [r["teacher"] for r in api(f"/api/v1/usage/teachers?school={S}&week={W}", "王")] == ["王"]
    assert {r["teacher"] for r in api(f"/api/v1/lessons?school={S}&date={FRI}", "王")} == {"王"}
    api(f"/api/v1/usage/classes?school={S}&week={W}", "王", 403)
    api(f"/api/v1/usage/teachers?school={S}&week={W}", "修理工", 403)
    api(f"/api/v1/usage/teachers?school=other&week={W}", "boss", 403)
    api(f"/api/v1/usage/teachers?school={S}&week=2026-48", "boss", 400)
    api(f"/api/v1/lessons?school={S}&date=yesterday", "boss", 400)
    # a day and a term instead of a week
    day = {r["teacher"]: (r["scheduled"], r["used"]) for r in api(f"/api/v1/usage/teachers?school={S}&date=2026-05-07")}
    assert day == {"王": (2, 1), "李": (2, 2), "赵": (1, 1)}  # 张's only lesson was excused (faulty): left out
    assert [r["teacher"] for r in api(f"/api/v1/usage/teachers?school={S}&date=2026-05-07", "王")] == ["王"]
    assert [r["class"] for r in api(f"/api/v1/usage/classes?school={S}&date=2026-05-07", "班主任甲")] == ["一班"]
    api(f"/api/v1/usage/classes?school={S}&term=someday", "boss", 400)
    html = api(f"/api/v1/usage/report?school={S}&week={W}&format=html").decode()
    assert "班班通使用情况周汇总" in html and "未达到使用率的教师" in html and "王" in html
    assert "按周二课表" in html  # the make-up Saturday
    trend = api(f"/api/v1/usage/trend?school={S}&week={W}&weeks=2&by=class")
    assert trend["weeks"] == ["2026-W18", W] and trend["rows"]["一班"] == [0.0, 5 / 12]  # W18: lessons, devices off


def test_published_week_is_frozen(api, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rep = publish_week(db, S, W, "test")
    assert rep["published"] and [r["teacher"] for r in rep["teachers"]] == [t[0] for t in EXPECTED_TEACHERS]
    # a new timetable gives 王 every lesson of 一班; the published week must not change
    rows = ["class,weekday,period,teacher,subject"]
    rows += [f"一班,{wd},{p},王,数学" for wd in range(1, 6) for p in (1, 2, 3)]
    (tmp_path / "t2.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    run_import(db, "timetable", S, tmp_path / "t2.csv", replace=True)  # the whole timetable, 二班 goes
    teachers = api(f"/api/v1/usage/teachers?school={S}&week={W}")
    assert [(r["teacher"], r["scheduled"], r["used"]) for r in teachers] == [t[:3] for t in EXPECTED_TEACHERS]
    assert len(api(f"/api/v1/lessons?school={S}&date={FRI}")) == 6
    assert publish_week(db, S, W, "again")["published"] == rep["published"]
    # the same days outside the frozen copy are recomputed from the new timetable
    live = usage.range_rates(db, S, usage.week_days(W)[0], usage.week_days(W)[-1], "teacher")
    assert {r["teacher"]: r["scheduled"] for r in live} == {"王": 11, "赵": 1}  # the substitution still holds
    stored = json.loads(db.query("SELECT report FROM usage_published WHERE school = ? AND week = ?",
                                 (S, W))[0]["report"])
    assert stored["teachers"] == teachers
    # a departed teacher's name leaves the frozen report too (trust: bbt purge --teacher)
    from collector.operations.retention import purge_teacher

    done = purge_teacher(db, "王", S, "test")
    frozen = json.dumps(usage.published(db, S, W), ensure_ascii=False)
    assert "王" not in frozen and done["pseudonym"] in frozen
