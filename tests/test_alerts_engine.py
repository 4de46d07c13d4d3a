"""The engine over a real store (SQLite and PostgreSQL): event rules, expiry, the school's own timetable,
the weekly usage rule, silences, retries, and secrets kept out of the logs."""
from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts import config, store
from alerts.engine import AlertEngine
from alerts.schedule import DbSchedule, StaticSchedule
from collector.intake.store import INSERT_EVENT, open_fault, touch_device
from collector.school.imports import run_import
from tests.alert_rig import local_ts, school_config
from tests.webhook import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def add_event(db: Any, device: str, etype: str, data: dict[str, Any], t: float, received: float) -> None:
    db.execute(INSERT_EVENT, ("s1", device, uuid.uuid4().hex, 0, etype, "2026-11-23T08:00:00+08:00", t, received,
                              json.dumps(data), 0))


def test_event_rules_fire_once_and_expire(db: Any, receiver: Any) -> None:
    now = time.time()
    touch_device(db, "s1", "pc-301", now)
    db.execute("UPDATE devices SET class = '301', online = 1 WHERE device = 'pc-301'")
    # left_on depends on the time of day this runs (after school hours it fires): not this test's subject
    config.save(db, "s1", school_config(receiver, rules={"left_on": {"enabled": False}}))
    engine = AlertEngine(db, StaticSchedule({"301": [(now - 600, now + 600)]}, term=True), weekly=None)
    engine.run_once()  # first start: the event cursor begins now
    add_event(db, "pc-301", "drift", {"field": "hostname", "old": "BBT-301", "new": "GAME-PC"}, now, now + 1)
    add_event(db, "pc-301", "software", {"action": "blocked", "name": "Minecraft", "exe": "mc.exe", "rule": "m*"},
              now, now + 1)
    add_event(db, "pc-301", "inventory", {"software": [{"name": "WPS"}]}, now - 100, now + 1)
    add_event(db, "pc-301", "inventory", {"software": [{"name": "WPS"}, {"name": "迅雷"}]}, now, now + 1)
    for k in range(3):
        add_event(db, "pc-301", "power", {"state": "on", "clean": False, "boot_time": "x"}, now - 3600 * k, now + 1)
    engine.clock = lambda: now + 2
    engine.run_once()
    engine.run_once()  # nothing new: nothing doubles
    got = {a["kind"]: a for a in store.list_alerts(db, "s1", "open")}
    assert set(got) == {"drift", "software_denied", "new_software", "unclean_shutdowns"}
    assert got["software_denied"]["severity"] == "warning"  # during a lesson
    assert got["drift"]["hits"] == 1 and got["new_software"]["subject"] == "新装软件 迅雷"
    engine.clock = lambda: now + 25 * 3600
    engine.run_once()
    assert [a["kind"] for a in store.list_alerts(db, "s1", "open")] == ["agent_silent"]  # a day later, silent
    assert {a["resolve_reason"] for a in store.list_alerts(db, "s1", "resolved")} == {"expired"}


def test_the_school_timetable_drives_lesson_rules(db: Any, tmp_path: Path) -> None:
    (tmp_path / "bell.csv").write_text("period,start,end\n1,08:00,08:45\n2,08:55,09:40\n", encoding="utf-8")
    (tmp_path / "tt.csv").write_text("class,weekday,period,teacher,subject\n301,1,1,张老师,语文\n301,1,2,李老师,数学\n",
                                     encoding="utf-8")
    run_import(db, "bell", "s1", tmp_path / "bell.csv")
    run_import(db, "timetable", "s1", tmp_path / "tt.csv")
    sched = DbSchedule(db)
    monday = local_ts(2026, 11, 23, 8, 30)
    assert sched.lessons_now("s1", monday) == {"301": (local_ts(2026, 11, 23, 8, 0), local_ts(2026, 11, 23, 8, 45))}
    assert sched.lessons_now("s1", local_ts(2026, 11, 23, 8, 50)) == {}
    assert sched.last_lesson_end("s1", monday) == {"301": local_ts(2026, 11, 23, 9, 40)}
    assert sched.in_term("s1", monday) and not sched.in_term("s1", local_ts(2026, 11, 22, 10))  # Sunday


def test_weekly_usage_below_threshold_at_the_weeks_end(db: Any) -> None:
    touch_device(db, "s1", "pc-301", time.time())
    calls: list[str] = []

    def weekly(_db: Any, school: str, week: str, now: float) -> dict[str, list[dict[str, Any]]]:
        calls.append(week)
        return {"teachers": [{"teacher": "张老师", "scheduled": 10, "used": 4, "rate": 0.4, "below_threshold": True}],
                "classes": []}

    sunday = local_ts(2026, 11, 29, 18, 30)
    engine = AlertEngine(db, StaticSchedule({}), weekly=weekly, clock=lambda: local_ts(2026, 11, 27, 12))
    engine.run_once()
    assert calls == []  # Friday: not yet
    engine.clock = lambda: sunday
    engine.run_once()
    engine.run_once()
    assert calls == ["2026-W48"]
    [a] = [x for x in store.list_alerts(db, "s1", "open") if x["kind"] == "usage_below"]
    assert a["device"] is None and "张老师" in a["subject"] and "40%" in a["subject"]


def test_silence_holds_failed_sends_retry_and_secrets_stay_out_of_logs(
        db: Any, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    now = local_ts(2026, 11, 23, 10, 0)
    clock = [now]
    for d in ("pc-301", "pc-401"):
        touch_device(db, "s1", d, now)
        db.execute("UPDATE devices SET class = ?, floor = ?, building = 'A' WHERE device = ?", (d[3:], d[3], d))
    cfg = school_config(receiver, group_wait_s=0, rules={"left_on": {"enabled": False},
                                                         "agent_silent": {"enabled": False}})
    cfg["channels"]["down"] = {"url": "wecombot://downkey", "endpoint": "http://127.0.0.1:9"}
    cfg["routes"] = [{"match": {"floor": "3"}, "channels": ["maint"]}, {"match": {"floor": "4"}, "channels": ["down"]}]
    config.save(db, "s1", cfg)
    store.add_silence(db, "s1", {"building": "A", "floor": "3"}, now - 60, now + 3600, "王师傅", "换投影",
                      "maintenance", now)
    open_fault(db, "s1", "pc-301", "projector", "warning", "agent", None, now, "e1")
    open_fault(db, "s1", "pc-401", "projector", "warning", "agent", None, now, "e2")
    engine = AlertEngine(db, StaticSchedule({}), clock=lambda: clock[0], weekly=None)
    caplog.set_level(logging.DEBUG)
    engine.run_once()
    engine.dispatcher.run_once()
    assert receiver.of("wecom") == []  # floor 3 is in maintenance
    rows = {r["channel"]: r for r in db.query("SELECT * FROM alert_notices")}
    assert rows["maint"]["note"] == "silenced" and rows["maint"]["due"] == now + 3600
    assert rows["down"]["status"] == "pending" and rows["down"]["attempts"] == 1  # unreachable: kept, retried
    clock[0] = now + 3601
    engine.dispatcher.run_once()
    assert len(receiver.of("wecom")) == 1 and "3楼 301班 投影机故障" in receiver.of("wecom")[0].text
    assert "maintkey" not in caplog.text and "downkey" not in caplog.text
    assert "***" in caplog.text  # apprise did log the URLs, masked


def test_repeat_until_acknowledged(db: Any, receiver: WebhookReceiver) -> None:
    now = local_ts(2026, 11, 23, 10, 0)
    clock = [now]
    touch_device(db, "s1", "pc-301", now)
    db.execute("UPDATE devices SET class = '301', floor = '3' WHERE device = 'pc-301'")
    config.save(db, "s1", school_config(receiver, group_wait_s=0, repeat_interval_min=60,
                                        rules={"agent_silent": {"enabled": False}}))
    open_fault(db, "s1", "pc-301", "projector", "warning", "agent", None, now, "e1")
    engine = AlertEngine(db, StaticSchedule({}), clock=lambda: clock[0], weekly=None)

    def step(t: float) -> int:
        clock[0] = t
        engine.run_once()
        engine.dispatcher.run_once()
        return len(receiver.of("wecom"))

    assert step(now) == 1
    assert step(now + 59 * 60) == 1
    assert step(now + 61 * 60) == 2 and "投影机故障" in receiver.of("wecom")[1].text  # repeated
    [a] = store.list_alerts(db, "s1", "open")
    store.acknowledge(db, a["id"], "王师傅", clock[0])
    assert step(now + 200 * 60) == 2  # acknowledged: no more repeats
