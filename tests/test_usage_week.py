"""A school's week end to end: imports, events published over MQTT to the collector, rates.

Week 2026-W19: Mon 4 and Tue 5 May are public holidays (Labour Day), Sat 9 May is the make-up
workday that follows Tuesday's timetable; the summer bell schedule takes effect on Fri 8 May.
Every expected figure below is counted by hand from the scripted events.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

import protocol
from collector.intake.service import Collector
from collector.rates import fault_review, usage
from collector.school.imports import run_import
from common.mqttconf import BrokerConfig
from tests.brokers import Mosquitto
from tests.helpers import close, publisher, wait_for
from tests.usage_script import DeviceScript

S = "s19"
WED, THU, FRI, SAT, MON = "2026-05-06", "2026-05-07", "2026-05-08", "2026-05-09", "2026-05-04"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def import_school(db, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    run_import(db, "devices", S, write(tmp / "devices.csv", "device,class\npc1,一班\npc2,二班\n"))
    run_import(db, "bell", S, write(tmp / "bell.csv", "period,start,end,schedule,valid_from\n"
                                    "1,08:00,08:40,winter,2025-09-01\n2,08:50,09:30,winter,2025-09-01\n"
                                    "3,10:00,10:40,winter,2025-09-01\n"
                                    "1,07:50,08:30,summer,2026-05-08\n2,08:40,09:20,summer,2026-05-08\n"
                                    "3,09:50,10:30,summer,2026-05-08\n"))
    rows = ["class,weekday,period,teacher,subject"]
    for wd in range(1, 6):
        rows += [f"一班,{wd},1,王,数学", f"一班,{wd},2,李,语文",
                 f"一班,{wd},3,{'刘,音乐' if wd == 2 else '张,英语'}",
                 f"二班,{wd},1,李,语文", f"二班,{wd},2,王,数学", f"二班,{wd},3,张,英语"]
    run_import(db, "timetable", S, write(tmp / "timetable.csv", "\n".join(rows) + "\n"))
    run_import(db, "substitutions", S, write(tmp / "subs.csv", f"date,class,period,teacher\n{THU},一班,3,赵\n"))
    db.execute("UPDATE schools SET settings = ? WHERE school = ?", (json.dumps({"heartbeat_s": 300}), S))


def script() -> list[DeviceScript]:
    pc1, pc2 = DeviceScript("pc1"), DeviceScript("pc2")
    # Wednesday (winter bell)
    pc1.power_on(WED, "07:50").heartbeats(WED, "07:55", "11:00").session(WED, "08:02", "08:38")
    pc1.session(WED, "08:55", "09:00").power_off(WED, "11:05")
    pc2.power_on(WED, "07:50").heartbeats(WED, "07:55", "11:00").session(WED, "08:00", "08:40")
    pc2.session(WED, "10:00", "10:30").power_off(WED, "11:05")
    # Thursday: one session across periods 1, 2 and the break; the substitute uses it in period 3
    pc1.power_on(THU, "07:50").heartbeats(THU, "07:55", "11:00").session(THU, "08:20", "09:10")
    pc1.session(THU, "10:05", "10:20").power_off(THU, "11:05")
    pc2.power_on(THU, "07:50").heartbeats(THU, "07:55", "11:00").session(THU, "08:05", "08:25")
    pc2.fault(THU, "09:45", "display_missing", "critical", "raised").fault(THU, "11:00", "display_missing",
                                                                          "critical", "cleared")
    # Friday (summer bell): pc1 reboots in period 1, goes silent in period 2 and stays silent
    pc1.power_on(FRI, "07:40").hb(FRI, "07:45", False).start(FRI, "07:55").hb(FRI, "08:00", True)
    pc1.hb(FRI, "08:05", True).power_on(FRI, "08:10").session(FRI, "08:12", "08:20").hb(FRI, "08:25", False)
    pc1.start(FRI, "08:45").hb(FRI, "08:50", True).hb(FRI, "08:54", True)
    pc2.power_on(FRI, "07:40").heartbeats(FRI, "07:45", "10:40").session(FRI, "07:50", "08:30")
    pc2.session(FRI, "09:50", "10:05").power_off(FRI, "10:45")
    # Saturday, the make-up day (Tuesday's timetable, summer bell): pc1 is off all day
    pc2.power_on(SAT, "07:40").hb(SAT, "07:45", False).session(SAT, "07:52", "08:28").start(SAT, "08:40")
    for m in ("08:45", "08:50", "08:55", "09:00", "09:05", "09:10"):
        pc2.hb(SAT, m, True)
    pc2.hb(SAT, "09:15", False).heartbeats(SAT, "09:20", "10:40").power_off(SAT, "10:45")
    # Monday is a holiday: use then does not count anywhere
    pc2.power_on(MON, "08:50").session(MON, "09:00", "10:00").power_off(MON, "10:10")
    return [pc1, pc2]


EXPECTED_TEACHERS = [  # teacher, scheduled, used, excluded (faulty)
    ("刘", 1, 0, 0), ("张", 5, 2, 1), ("李", 8, 5, 0), ("王", 8, 4, 0), ("赵", 1, 1, 0)]
EXPECTED_CLASSES = [("一班", 12, 5, 0), ("二班", 11, 7, 1)]


@pytest.fixture
def school_week(mosquitto: Mosquitto, db, tmp_path: Path):  # type: ignore[no-untyped-def]
    import_school(db, tmp_path)
    col = Collector(db.url, BrokerConfig(port=mosquitto.port), client_id="usage-collector")
    col.start()
    assert col.connected.wait(10)
    pub = publisher(mosquitto.port, "usage-pub")
    total = 0
    try:
        for dev in script():
            for i in range(0, len(dev.events), 100):
                chunk = dev.events[i:i + 100]
                pub.publish(protocol.events_topic(S, dev.device), protocol.dumps(chunk), qos=1).wait_for_publish(5)
                total += len(chunk)
        wait_for(lambda: col.totals.stored >= total, 60, what="all events stored")
    finally:
        close(pub)
        col.stop()
    assert col.totals.stored == total and col.totals.rejected == 0
    return db


def confirm_display_missing(db) -> None:  # type: ignore[no-untyped-def]
    """The maintainer confirms pc2's display_missing of Thursday as 影响上课 (protocol.md §3)."""
    [f] = db.query("SELECT id FROM faults WHERE school = ? AND code = 'display_missing'", (S,))
    fault_review.review_fault(db, f["id"], "confirmed", "维修员")


def test_week_rates_match_hand_count(school_week) -> None:  # type: ignore[no-untyped-def]
    db = school_week
    # before review, the agent's fault excuses nothing: 张's Thursday lesson counts and awaits review
    zhang = next(r for r in usage.week_rates(db, S, "2026-W19", "teacher") if r["teacher"] == "张")
    assert (zhang["scheduled"], zhang["used"], zhang["excluded"], zhang["awaiting_review"]) == (6, 2, 0, 1)
    confirm_display_missing(db)
    teachers = usage.week_rates(db, S, "2026-W19", "teacher")
    assert [(r["teacher"], r["scheduled"], r["used"], r["excluded"]) for r in teachers] == EXPECTED_TEACHERS
    for r in teachers:
        assert r["rate"] == r["used"] / r["scheduled"]
        assert r["below_threshold"] == (r["rate"] < 0.6)
    assert {r["teacher"]: r["rate"] for r in teachers}["李"] == 0.625
    classes = usage.week_rates(db, S, "2026-W19", "class")
    assert [(r["class"], r["scheduled"], r["used"], r["excluded"]) for r in classes] == EXPECTED_CLASSES
    assert classes[1]["rate"] == 7 / 11
    district = usage.district_week_rates(db, "2026-W19", "teacher")
    assert district == {S: teachers}
    assert usage.district_week_rates(db, "2026-W19", "class") == {S: classes}
    low = usage.below_threshold(db, S, "2026-W19")
    assert [r["teacher"] for r in low["teachers"]] == ["刘", "张", "王"]
    assert [r["class"] for r in low["classes"]] == ["一班"]


def status(db, day: str) -> dict[tuple[str, int], tuple[str, float, str]]:  # type: ignore[no-untyped-def]
    return {(r["class"], r["period"]): (r["status"], r["in_use_minutes"], r["teacher"])
            for r in usage.day_lessons(db, S, date.fromisoformat(day))}


def test_edge_cases_lesson_by_lesson(school_week) -> None:  # type: ignore[no-untyped-def]
    db = school_week
    assert status(db, THU)[("二班", 3)][0] == "not_used"  # on, not used: the fault awaits review
    confirm_display_missing(db)
    assert usage.day_lessons(db, S, date.fromisoformat(MON)) == []  # holiday
    assert status(db, "2026-05-05") == {}
    thu = status(db, THU)  # one session 08:20-09:10 spans periods 1, 2 and the break
    assert thu[("一班", 1)] == ("used", 20.0, "王") and thu[("一班", 2)] == ("used", 20.0, "李")
    assert thu[("一班", 3)] == ("used", 15.0, "赵")  # the substitute is credited
    assert thu[("二班", 3)][0] == "faulty"
    fri = status(db, FRI)  # summer bell from Friday
    assert fri[("一班", 1)] == ("used", 18.0, "王")  # 07:55-08:05 before the reboot + 08:12-08:20
    assert fri[("一班", 2)] == ("not_used", 9.0, "李")  # silent after 08:54: counts to the last heartbeat
    assert fri[("一班", 3)] == ("device_off", 0.0, "张")
    assert fri[("二班", 3)] == ("used", 15.0, "张")  # 09:50-10:05: only with the summer bell
    lessons = usage.day_lessons(db, S, date.fromisoformat(FRI))
    assert [(r["period"], r["start"], r["end"]) for r in lessons if r["class"] == "一班"] == [
        (1, "07:50", "08:30"), (2, "08:40", "09:20"), (3, "09:50", "10:30")]
    sat = status(db, SAT)  # follows Tuesday: 刘 teaches period 3 of 一班
    assert {k: v[0] for k, v in sat.items() if k[0] == "一班"} == {("一班", 1): "device_off", ("一班", 2): "device_off",
                                                                 ("一班", 3): "device_off"}
    assert sat[("一班", 3)][2] == "刘"
    assert sat[("二班", 2)] == ("used", 30.0, "王")  # open session closed at the last in-use heartbeat
    assert sat[("二班", 3)][0] == "not_used"


def test_concurrent_refreshes_of_one_day(school_week) -> None:  # type: ignore[no-untyped-def]
    """API threads and the scheduler may refresh the same day at once: they take turns."""
    import threading

    db = school_week
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            for _ in range(3):
                usage.refresh_day(db, S, date.fromisoformat(THU))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(usage.day_lessons(db, S, date.fromisoformat(THU))) == 6
