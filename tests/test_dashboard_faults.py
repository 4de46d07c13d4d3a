"""Faults and alerts pages: alerts from the real engine, acknowledging, the fault register, 报修, routing."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts import config as alert_config
from alerts.engine import AlertEngine
from tests.dash import (
    SCHOOL,
    USERS,
    add_users,
    csrf_of,
    login,
    make_app,
    online,
    publish,
    school_day_at,
    school_hours,
    seed_school,
)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    a = make_app(str(tmp_path / "bbt.db"))
    db = a.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    now = school_day_at(8, 0)
    publish(db, "pc-102", [("fault", now, {"code": "display_missing", "severity": "critical", "state": "raised",
                                           "detail": "HDMI"})], status=online("pc-102", now))
    AlertEngine(db, clock=school_hours).run_once()
    yield a
    db.close()


def client_as(app: Any, role: str) -> Any:
    c = app.test_client()
    login(c, USERS[role][0])
    return c


def test_maintainer_acknowledges_an_alert(app: Any) -> None:
    c = client_as(app, "maintainer")
    page = c.get("/faults/").get_data(as_text=True)
    assert "display_missing" in page or "显示" in page
    db = app.extensions["bbt_db"]
    [alert] = [a for a in db.query("SELECT * FROM alerts WHERE device = 'pc-102'") if a["kind"] == "fault"]
    assert alert["state"] == "firing"
    r = c.post(f"/faults/alerts/{alert['id']}/ack", data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert "已确认告警" in r.get_data(as_text=True)
    row = db.query("SELECT state, acked_by FROM alerts WHERE id = ?", (alert["id"],))[0]
    assert row == {"state": "acknowledged", "acked_by": USERS["maintainer"][0]}
    assert db.query("SELECT action FROM audit WHERE action = 'alert.ack'")
    # a class teacher sees their class's alerts only, and may not acknowledge
    ct = client_as(app, "class_teacher")
    assert "pc-102" not in ct.get("/faults/?state=all").get_data(as_text=True)  # 七年级2班 is not theirs
    assert ct.post(f"/faults/alerts/{alert['id']}/ack", data={"csrf_token": csrf_of(page)}).status_code in (400, 403)


def test_teacher_reports_and_maintainer_fills_the_register(app: Any) -> None:
    t = client_as(app, "teacher")
    page = t.get("/faults/repair").get_data(as_text=True)
    r = t.post("/faults/repair", data={"csrf_token": csrf_of(page), "device": "pc-201", "code": "no_sound",
                                       "severity": "warning", "detail": "音箱没声音"}, follow_redirects=True)
    assert "报修已登记" in r.get_data(as_text=True)
    bad = t.post("/faults/repair", data={"csrf_token": csrf_of(page), "device": "pc-201", "code": "other"})
    assert bad.status_code == 400 and "请填写故障描述" in bad.get_data(as_text=True)
    db = app.extensions["bbt_db"]
    [ticket] = db.query("SELECT * FROM fault_tickets WHERE device = 'pc-201'")
    assert ticket["reporter"] == USERS["teacher"][0] and ticket["code"] == "report_no_sound"
    assert db.query("SELECT cleared_t FROM faults WHERE id = ?", (ticket["fault_id"],))[0]["cleared_t"] is None
    m = client_as(app, "maintainer")
    page = m.get(f"/faults/tickets/{ticket['id']}").get_data(as_text=True)
    r = m.post(f"/faults/tickets/{ticket['id']}", data={"csrf_token": csrf_of(page), "cause": "音箱电源线松动",
                                                          "handling": "重新插好", "action": "close"})
    assert r.status_code == 302
    t2 = db.query("SELECT * FROM fault_tickets WHERE id = ?", (ticket["id"],))[0]
    assert t2["cause"] == "音箱电源线松动" and t2["closed_by"] == USERS["maintainer"][0] and t2["repaired_t"]
    assert db.query("SELECT cleared_t FROM faults WHERE id = ?", (ticket["fault_id"],))[0]["cleared_t"]
    assert t.get(f"/faults/tickets/{ticket['id']}").status_code == 403


def test_register_a_power_cut_afterwards(app: Any) -> None:
    m = client_as(app, "maintainer")
    page = m.get("/faults/").get_data(as_text=True)
    r = m.post("/faults/register", data={"csrf_token": csrf_of(page), "school": SCHOOL, "device": "pc-101",
                                         "code": "power_cut", "severity": "critical",
                                         "opened": school_day_at(8, 0).strftime("%Y-%m-%dT%H:%M"),
                                         "cleared": school_day_at(9, 30).strftime("%Y-%m-%dT%H:%M"), "summary": "停电"},
               follow_redirects=True)
    assert "已登记故障" in r.get_data(as_text=True)
    f = app.extensions["bbt_db"].query("SELECT * FROM faults WHERE code = 'power_cut'")[0]
    assert f["source"] == "person" and f["cleared_t"] - f["opened_t"] == 90 * 60
    r = m.post("/faults/register", data={"csrf_token": csrf_of(page), "school": SCHOOL, "device": "pc-101",
                                         "code": "power_cut", "opened": "2026-11-23T10:00",
                                         "cleared": "2026-11-23T09:00"}, follow_redirects=True)
    assert "未登记" in r.get_data(as_text=True)


def test_admin_edits_alert_routing_keeping_secrets(app: Any) -> None:
    db = app.extensions["bbt_db"]
    alert_config.save(db, SCHOOL, {"channels": {"电教组": {"url": "wecombot://secret-key-123", "person": "张"}},
                                   "routes": [{"match": {"min_severity": "warning"}, "channels": ["电教组"]}]})
    c = client_as(app, "admin")
    page = c.get(f"/admin/routing?school={SCHOOL}").get_data(as_text=True)
    assert "secret-key-123" not in page and "wecombot://***" in page
    text = ('{"channels": {"电教组": {"url": "wecombot://***", "person": "王"}}, '
            '"routes": [{"match": {"kind": "fault"}, "channels": ["电教组"]}]}')
    r = c.post("/admin/routing", data={"csrf_token": csrf_of(page), "school": SCHOOL, "config": text})
    assert r.status_code == 302
    raw = alert_config.load_raw(db, SCHOOL)
    assert raw["channels"]["电教组"] == {"url": "wecombot://secret-key-123", "person": "王"}
    assert raw["routes"][0]["match"] == {"kind": "fault"}
    bad = c.post("/admin/routing", data={"csrf_token": csrf_of(page), "school": SCHOOL, "config": "{oops"})
    assert bad.status_code == 400 and "不是有效的 JSON" in bad.get_data(as_text=True)
    bad = c.post("/admin/routing", data={"csrf_token": csrf_of(page), "school": SCHOOL,
                                         "config": '{"routes": [{"channels": ["nobody"]}]}'})
    assert bad.status_code == 400
    assert alert_config.load_raw(db, SCHOOL)["routes"][0]["match"] == {"kind": "fault"}  # unchanged
