"""Where a lesson is taught (subject/room exclusions, 外出上课/调课 marks), classes with no PC, and
use of a classroom PC outside lessons (课外使用): pure functions, then the store and the API."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from alerts import rules, store
from alerts.engine import AlertEngine
from alerts.rules import Device
from alerts.schedule import DbSchedule
from collector.lessons import usage_settings
from collector.lessons.attribution import Lesson, attribute
from collector.lessons.lesson_place import Mark, away_of, outside_lessons, room_elsewhere, subject_elsewhere, subtract
from collector.rates import outside_use, usage, usage_export
from collector.rates.usage import rates_of
from collector.school.imports import classes_without_device, import_warnings, run_import
from dashboard import create_app
from dashboard.users import create_token
from tests.helpers import run_bbt
from tests.test_usage_week import FRI, THU, WED, S, confirm_display_missing, import_school, script, write
from tests.usage_script import DeviceScript, at, ingest

W = "2026-W19"
M = 60.0


def lesson(subject: str = "数学", room: str | None = None, teacher: str = "王", klass: str = "一班") -> Lesson:
    return Lesson("2026-11-23", klass, 1, teacher, subject, 0.0, 40 * M, "08:00", "08:40", room=room)


# -- pure functions ------------------------------------------------------------------------------
def test_subject_and_room_rules() -> None:
    assert subject_elsewhere("体育", ["体育", "实验"]) and subject_elsewhere(" 体育 ", ["体育"])
    assert subject_elsewhere("体育与健康", ["体育*"]) and not subject_elsewhere("体育与健康", ["体育"])
    assert subject_elsewhere("IT", ["it"]) and not subject_elsewhere("数学", ["体育", ""])
    assert not room_elsewhere(None, "一班", []) and not room_elsewhere("", "一班", [])
    assert not room_elsewhere("一班", "一班", []) and not room_elsewhere("101", "一班", ["101"])
    assert not room_elsewhere("本班", "一班", [])
    assert room_elsewhere("操场", "一班", ["101"]) and room_elsewhere("机房", "一班", [])
    assert away_of(lesson(), ["体育"], []) is None
    assert away_of(lesson("体育"), ["体育"], []) == ("elsewhere", "科目：体育")
    assert away_of(lesson(room="实验室"), [], ["101"]) == ("elsewhere", "上课地点：实验室")
    mark = Mark(7, "away", "去礼堂看演出", "王")
    assert away_of(lesson(), [], [], mark) == ("away", "去礼堂看演出（王）")
    swapped = Mark(8, "swapped", "与第三节对调", "李")
    assert away_of(lesson(), [], [], swapped) == ("swapped", "与第三节对调（李）")


def test_away_and_no_device_lessons_are_out_of_the_denominator() -> None:
    ivs = [(0.0, 30 * M)]
    u = attribute(lesson(), "pc1", ivs, [0.0], [], 10)
    assert (u.status, u.counted, u.used) == ("used", True, True)
    away = attribute(lesson(), "pc1", ivs, [0.0], [], 10, away=("away", "外出上课：x（王）"))
    assert (away.status, away.counted, away.used, away.note) == ("away", False, False, "外出上课：x（王）")
    assert attribute(lesson(), "pc1", [], [], [], 10, now=10.0, away=("away", "n")).status == "pending"
    nodev = attribute(lesson(), None, [], [], [], 10)
    assert (nodev.status, nodev.counted) == ("no_device", False)
    # 王: one used lesson, one away, one in a class with no PC: 1/1, not 1/3
    usages = [u, away, nodev, attribute(lesson(teacher="李"), "pc1", [], [], [], 10)]
    by_teacher = {r.key: (r.scheduled, r.used, r.rate, r.excluded) for r in rates_of(usages, "teacher", 0.6)}
    assert by_teacher == {"王": (1, 1, 1.0, 2), "李": (1, 0, 0.0, 0)}


def test_outside_lessons_cuts_the_lessons_out_of_the_days_use() -> None:
    assert subtract([(0, 100)], [(10, 20), (15, 30), (90, 120)]) == [(0, 10), (30, 90)]
    assert subtract([(0, 10), (50, 60)], []) == [(0, 10), (50, 60)]
    assert subtract([(10, 20)], [(0, 100)]) == []
    lessons = [(100.0, 200.0), (300.0, 400.0)]
    assert outside_lessons([(50.0, 250.0), (390.0, 500.0)], lessons, 0.0, 450.0) == [(50, 100), (200, 250),
                                                                                        (400, 450)]


def test_outside_use_rule() -> None:
    rows = [{"date": "2026-05-06", "device": "pc1", "class": "一班", "minutes": 35.0,
             "spans": [{"start": "09:35", "end": "09:50", "minutes": 15.0}]},
            {"date": "2026-05-06", "device": "pc2", "class": "二班", "minutes": 5.0, "spans": []}]
    [c] = rules.outside_use(rows, {"pc1": Device(S, "pc1", "一班", building="A")}, 1.0, {"minutes": 20})
    assert c.fingerprint == "outside_use|pc1|2026-05-06" and c.labels["building"] == "A"
    assert "课外使用 35 分钟" in c.subject and "09:35–09:50" in (c.detail or "")
    assert rules.outside_use(rows, {}, 1.0, {"minutes": 40}) == []


# -- the store -----------------------------------------------------------------------------------
def lessons_of(db: Any, day: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["class"], r["period"]): r for r in usage.day_lessons(db, S, date.fromisoformat(day))}


def teacher_rates(db: Any) -> dict[str, tuple[int, int, int]]:
    return {r["teacher"]: (r["scheduled"], r["used"], r["excluded"])
            for r in usage.week_rates(db, S, W, "teacher")}


def test_subject_setting_and_room_column(db: Any, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)  # pc2's Thursday fault excuses its lesson (protocol.md §3)
    before = teacher_rates(db)
    assert before["张"] == (5, 2, 1)
    usage_settings.update(db, S, {"not_in_classroom_subjects": "英语、音乐"})
    assert usage_settings.get(db, S)["not_in_classroom_subjects"] == ["英语", "音乐"]
    after = teacher_rates(db)
    assert "张" not in after and "刘" not in after  # every English and music lesson is elsewhere: no rate
    assert after["王"] == before["王"] and after["李"] == before["李"]
    wed = lessons_of(db, WED)
    assert wed[("一班", 3)]["status"] == "elsewhere" and wed[("一班", 3)]["status_zh"] == "不在本教室"
    assert wed[("一班", 3)]["note"] == "科目：英语" and not wed[("一班", 3)]["counted"]
    usage_settings.update(db, S, {"not_in_classroom_subjects": ""})
    assert teacher_rates(db) == before
    # the timetable's room: 王's Wednesday maths in 一班 is in the computer room
    rows = ["class,weekday,period,teacher,subject,room"]
    for wd in range(1, 6):
        room = "机房" if wd == 3 else ""
        rows += [f"一班,{wd},1,王,数学,{room}", f"一班,{wd},2,李,语文,一班",
                 f"一班,{wd},3,{'刘,音乐' if wd == 2 else '张,英语'},",
                 f"二班,{wd},1,李,语文,", f"二班,{wd},2,王,数学,", f"二班,{wd},3,张,英语,"]
    run_import(db, "timetable", S, write(tmp_path / "tt-room.csv", "\n".join(rows) + "\n"))
    wed = lessons_of(db, WED)
    assert (wed[("一班", 1)]["status"], wed[("一班", 1)]["note"]) == ("elsewhere", "上课地点：机房")
    assert wed[("一班", 2)]["counted"] and wed[("一班", 2)]["note"] is None  # room 一班: its own classroom
    s, u, x = teacher_rates(db)["王"]
    assert (s, u, x) == (before["王"][0] - 1, before["王"][1] - 1, 1)  # that lesson was used: now left out


def test_a_class_with_no_pc_lowers_nobody_and_the_import_warns(db: Any, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)  # pc2's Thursday fault excuses its lesson (protocol.md §3)
    before = teacher_rates(db)
    run_import(db, "devices", S, write(tmp_path / "dev1.csv", "device,class\npc1,一班\n"), replace=True)  # 二班: no PC
    assert classes_without_device(db, S) == ["二班"]
    [warning] = import_warnings(db, "timetable", S)
    assert "二班" in warning and "无设备" in warning
    after = teacher_rates(db)
    # 王 teaches 一班 period 1 and 二班 period 2: only his 一班 lessons count now
    one = [r for d in (WED, THU, FRI, "2026-05-09") for r in usage.day_lessons(db, S, date.fromisoformat(d))
           if r["teacher"] == "王"]
    in_one = [r for r in one if r["class"] == "一班"]
    assert after["王"][0] == len(in_one) and after["王"][1] == sum(r["used"] for r in in_one)
    assert all(r["status"] == "no_device" and not r["counted"] for r in one if r["class"] == "二班")
    assert after["王"][0] < before["王"][0]
    assert {r["class"] for r in usage.week_rates(db, S, W, "class")} == {"一班"}  # 二班: nothing to rate
    # the command line says so, and the import itself stands
    res = run_bbt("import", "timetable", str(tmp_path / "timetable.csv"), "--school", S, "--db", db.url)
    assert res.returncode == 0, res.stderr
    assert "imported 30 timetable rows" in res.stdout and "二班" in res.stderr and "无设备" in res.stderr


def test_outside_use_with_break_time_use(db: Any, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    pc1 = DeviceScript("pc1")
    # Wednesday, winter bell: periods 08:00-08:40, 08:50-09:30, 10:00-10:40
    pc1.power_on(WED, "07:50").session(WED, "07:52", "08:30")  # 8 minutes before the first lesson
    pc1.session(WED, "09:20", "09:50")  # 10 in period 2, then 20 in the break
    pc1.session(WED, "12:00", "12:15").power_off(WED, "12:20")  # lunch: 15
    pc2 = DeviceScript("pc2").power_on(WED, "08:00").session(WED, "08:00", "08:40").power_off(WED, "08:45")
    ingest(db, S, [pc1, pc2])
    rows = outside_use.day_rows(db, S, date.fromisoformat(WED))
    assert [(r["device"], r["class"], r["minutes"]) for r in rows] == [("pc1", "一班", 43.0)]
    assert [(s["start"], s["end"]) for s in rows[0]["spans"]] == [("07:52", "08:00"), ("09:30", "09:50"),
                                                                    ("12:00", "12:15")]
    assert outside_use.device_rows(db, S, "pc1", date.fromisoformat(FRI))[0]["minutes"] == 43.0
    # a lesson the class spent elsewhere is outside too: 一班's English (period 3) in the sports hall
    usage_settings.update(db, S, {"not_in_classroom_subjects": "英语"})
    pc1b = DeviceScript("pc1b")
    run_import(db, "devices", S, write(tmp_path / "d2.csv", "device,class\npc1,一班\npc2,二班\npc1b,一班\n"))
    pc1b.power_on(THU, "10:00").session(THU, "10:05", "10:25").power_off(THU, "10:30")
    ingest(db, S, [pc1b])
    assert [(r["device"], r["minutes"]) for r in outside_use.day_rows(db, S, date.fromisoformat(THU))] == [
        ("pc1b", 20.0)]


def test_outside_use_alert_fires_only_when_enabled(db: Any, tmp_path: Path) -> None:
    import_school(db, tmp_path)
    pc1 = DeviceScript("pc1").power_on(WED, "07:50").session(WED, "12:00", "12:30").power_off(WED, "12:40")
    ingest(db, S, [pc1])
    now = at(WED, "13:00").timestamp()
    engine = AlertEngine(db, DbSchedule(db), clock=lambda: now)
    engine.run_once()
    assert [a for a in store.list_alerts(db, S, "open") if a["kind"] == "outside_use"] == []  # off by default
    db.execute("INSERT INTO alert_config (school, config, updated) VALUES (?, ?, 0)",
               (S, json.dumps({"rules": {"outside_use": {"enabled": True, "minutes": 20}}})))
    engine.run_once()
    [a] = [a for a in store.list_alerts(db, S, "open") if a["kind"] == "outside_use"]
    assert a["device"] == "pc1" and "课外使用 30 分钟" in a["subject"]
    db.execute("UPDATE alert_config SET config = ? WHERE school = ?",
               (json.dumps({"rules": {"outside_use": {"enabled": True, "minutes": 31, "check_every_min": 0}}}), S))
    engine.run_once()  # above the threshold now: nothing new
    assert len([a for a in store.list_alerts(db, S, "all") if a["kind"] == "outside_use"]) == 1


# -- marks through the API -----------------------------------------------------------------------
@pytest.fixture
def api(db: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)  # pc2's Thursday fault excuses its lesson (protocol.md §3)
    tokens = {}
    users = (("boss", "headteacher", None), ("班主任甲", "class_teacher", "一班"), ("王", "teacher", None),
             ("李", "teacher", None), ("root", "admin", None))
    for name, role, klass in users:
        db.execute("INSERT INTO users (name, role, school, class, must_change, created) VALUES (?, ?, ?, ?, 0, 0)",
                   (name, role, None if role == "admin" else S, klass))
        tokens[name] = create_token(db, name)
    app = create_app({"BBT_DB": db.url, "TESTING": True})
    client = app.test_client()

    def call(method: str, path: str, who: str, status: int, body: Any = None) -> Any:
        r = client.open(path, method=method, json=body, headers={"Authorization": f"Bearer {tokens[who]}"})
        assert r.status_code == status, (path, who, r.status_code, r.data[:300])
        return r.get_json()
    yield call
    app.extensions["bbt_db"].close()


def audit_rows(db: Any) -> list[dict[str, Any]]:
    return [dict(r, detail=json.loads(r["detail"])) for r in
            db.query("SELECT actor, action, target, detail FROM audit WHERE action LIKE 'lesson.%' ORDER BY id")]


def test_marks_roles_audit_and_reversal(db: Any, api: Any) -> None:
    base = teacher_rates(db)
    wed = lessons_of(db, WED)
    assert wed[("二班", 2)]["teacher"] == "王" and wed[("二班", 2)]["status"] == "not_used"
    body = {"school": S, "date": WED, "class": "二班", "period": 2, "kind": "away", "reason": "带学生去科技馆"}
    api("POST", "/api/v1/lesson-marks", "李", 403, body)  # not 李's lesson
    api("POST", "/api/v1/lesson-marks", "班主任甲", 403, body)  # not the class teacher's class, nor their lesson
    api("POST", "/api/v1/lesson-marks", "王", 400, dict(body, reason=" "))
    api("POST", "/api/v1/lesson-marks", "王", 400, dict(body, kind="holiday"))
    api("POST", "/api/v1/lesson-marks", "王", 404, dict(body, period=9))
    m = api("POST", "/api/v1/lesson-marks", "王", 201, body)
    assert (m["kind_zh"], m["marked_by"], m["teacher"], m["active"]) == ("外出上课", "王", "王", True)
    api("POST", "/api/v1/lesson-marks", "boss", 409, body)  # already marked
    row = lessons_of(db, WED)[("二班", 2)]
    assert (row["status"], row["status_zh"], row["counted"]) == ("away", "外出上课", False)
    assert row["note"] == "带学生去科技馆（王）"
    assert usage_export.status_cell(row) == "外出上课（带学生去科技馆（王））"
    marked = teacher_rates(db)
    assert marked["王"] == (base["王"][0] - 1, base["王"][1], base["王"][2] + 1)
    # the class teacher marks a lesson of their class that another teacher gave
    m2 = api("POST", "/api/v1/lesson-marks", "班主任甲", 201,
             {"school": S, "date": THU, "class": "一班", "period": 2, "kind": "swapped", "reason": "与第三节对调"})
    assert lessons_of(db, THU)[("一班", 2)]["status"] == "swapped"
    assert [x["id"] for x in api("GET", f"/api/v1/lesson-marks?school={S}", "王", 200)] == [m["id"]]
    assert {x["id"] for x in api("GET", f"/api/v1/lesson-marks?school={S}", "boss", 200)} == {m["id"], m2["id"]}
    # only a headteacher or admin reverses; the lesson is measured again
    api("POST", f"/api/v1/lesson-marks/{m['id']}/reverse", "王", 403, {})
    api("POST", f"/api/v1/lesson-marks/{m['id']}/reverse", "班主任甲", 403, {})
    r = api("POST", f"/api/v1/lesson-marks/{m['id']}/reverse", "boss", 200, {"reason": "当天并未外出"})
    assert (r["active"], r["reversed_by"], r["reverse_reason"]) == (False, "boss", "当天并未外出")
    api("POST", f"/api/v1/lesson-marks/{m['id']}/reverse", "root", 409, {})
    api("POST", "/api/v1/lesson-marks/9999/reverse", "root", 404, {})
    assert lessons_of(db, WED)[("二班", 2)]["status"] == "not_used"
    assert teacher_rates(db)["王"] == base["王"]
    # every mark and reversal is in the audit log with its author
    log = audit_rows(db)
    assert [(x["actor"], x["action"], x["target"]) for x in log] == [
        ("王", "lesson.mark", f"{S}/{WED}/二班/2"), ("班主任甲", "lesson.mark", f"{S}/{THU}/一班/2"),
        ("boss", "lesson.mark_reversed", f"{S}/{WED}/二班/2")]
    assert log[0]["detail"]["reason"] == "带学生去科技馆" and log[2]["detail"]["marked_by"] == "王"
    # a published week is closed to marks
    from collector.rates.usage_report import publish_week

    publish_week(db, S, W, "boss")
    api("POST", "/api/v1/lesson-marks", "王", 409, body)
    api("POST", f"/api/v1/lesson-marks/{m2['id']}/reverse", "boss", 409, {})


def test_outside_use_api_roles(db: Any, api: Any) -> None:
    rows = api("GET", f"/api/v1/usage/outside?school={S}&date={THU}", "boss", 200)
    assert [(r["device"], r["minutes"]) for r in rows] == [("pc1", 10.0)]  # 08:20-09:10 across the break
    assert all(set(r) >= {"device", "class", "minutes", "spans"} for r in rows)
    assert [r["class"] for r in api("GET", f"/api/v1/usage/outside?school={S}&date={THU}", "班主任甲", 200)] == [
        "一班"]
    api("GET", f"/api/v1/usage/outside?school={S}&date={WED}", "王", 403)
    api("GET", f"/api/v1/usage/outside?school={S}&date=someday", "boss", 400)


# -- the pages -----------------------------------------------------------------------------------
@pytest.fixture
def pages(db: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    from dashboard.users import add_user
    from tests.dash import PASSWORD, csrf_of, login, make_app

    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    confirm_display_missing(db)  # pc2's Thursday fault excuses its lesson (protocol.md §3)
    add_user(db, "王", "teacher", PASSWORD, S, None, must_change=False)
    hashed = db.query("SELECT password_hash FROM users WHERE name = ?", ("王",))[0]["password_hash"]
    for name, role in (("boss", "headteacher"), ("李", "teacher")):
        db.execute("INSERT INTO users (name, role, school, class, password_hash, must_change, password_changed, "
                   "created) VALUES (?, ?, ?, NULL, ?, 0, ?, 0)", (name, role, S, hashed, 1e10))
    app = make_app(db.url)
    clients = {}
    for name in ("王", "boss", "李"):
        c = app.test_client()
        assert login(c, name).status_code == 302
        clients[name] = c

    def page(who: str, path: str) -> str:
        r = clients[who].get(path)
        assert r.status_code == 200, (path, r.status_code, r.data[:300])
        return str(r.get_data(as_text=True))

    def post(who: str, path: str, data: dict[str, Any], status: int = 302) -> Any:
        token = csrf_of(page(who, f"/usage/lessons?school={S}&date={WED}"))
        r = clients[who].post(path, data={**data, "csrf_token": token, "back": f"/usage/lessons?school={S}"})
        assert r.status_code == status, (path, who, r.status_code, r.data[:300])
        return r
    yield page, post
    app.extensions["bbt_db"].close()


def test_mark_and_reverse_from_the_lesson_list(db: Any, pages: Any) -> None:
    page, post = pages
    html = page("王", f"/usage/lessons?school={S}&date={WED}")
    assert html.count("标记外出上课/调课") == 2  # his two lessons that day, 一班 p1 and 二班 p2
    form = {"school": S, "date": WED, "class": "二班", "period": "2", "kind": "away", "reason": "科技馆参观"}
    post("王", "/usage/lessons/mark", dict(form, **{"class": "一班"}, period="2"), 403)  # 李's lesson
    post("李", "/usage/lessons/mark", form, 403)
    post("王", "/usage/lessons/mark", form)
    html = page("王", f"/usage/lessons?school={S}&date={WED}")
    assert "科技馆参观（王）" in html and html.count("标记外出上课/调课") == 1
    assert "撤销标记" not in html  # a teacher cannot reverse
    boss = page("boss", f"/usage/lessons?school={S}&date={WED}")
    assert boss.count("撤销标记") == 1 and "外出上课" in boss
    [mark_id] = [r["id"] for r in db.query("SELECT id FROM lesson_marks")]
    post("王", f"/usage/lessons/marks/{mark_id}/reverse", {}, 403)
    post("boss", f"/usage/lessons/marks/{mark_id}/reverse", {"reason": "核实未外出"})
    assert lessons_of(db, WED)[("二班", 2)]["status"] == "not_used"
    assert [(r["actor"], r["action"]) for r in audit_rows(db)] == [("王", "lesson.mark"),
                                                                   ("boss", "lesson.mark_reversed")]
    outside = page("boss", f"/usage/outside?school={S}&date={THU}")
    assert "pc1" in outside and "08:40–08:50" in outside


def test_device_page_shows_use_outside_lessons(db: Any, pages: Any, tmp_path: Path) -> None:
    import time
    from datetime import datetime, timedelta

    from collector.lessons.timetable import lessons_on

    page, _post = pages
    day = datetime.fromtimestamp(time.time(), usage.load_model(db, S).tz).date() - timedelta(days=1)
    # yesterday, made a school day whatever the real calendar says (a Monday timetable)
    run_import(db, "calendar", S, write(tmp_path / "cal.csv", f"date,kind,follows_weekday\n{day},workday,1\n"))
    assert lessons_on(usage.load_model(db, S), day)[1]
    ds = day.isoformat()
    run_import(db, "devices", S, write(tmp_path / "d3.csv", "device,class\npc1,一班\npc2,二班\npc3,一班\n"))
    # (a new device: the fixture's script already used pc1's event ids)
    ingest(db, S, [DeviceScript("pc3").power_on(ds, "11:50").session(ds, "12:00", "12:25").power_off(ds, "12:30")])
    html = page("boss", f"/devices/{S}/pc3")
    section = html.split('id="outside-use"')[1].split("</details>")[0]
    assert "课外使用 (1)" in section and ds in section and "12:00–12:25" in section and "25.0" in section
