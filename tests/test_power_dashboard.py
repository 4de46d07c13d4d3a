"""The 电源管理 pages through Flask's test client: bad input changes nothing, the switch-on schedule and
the wake button are audited, a wake action says per PC why it was not woken."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from tests.dash import SCHOOL, TZ, USERS, add_users, csrf_of, login, make_app, online, publish, seed_school


def client_for(tmp_path: Path, role: str = "maintainer") -> tuple[Any, Any]:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    c = app.test_client()
    login(c, USERS[role][0])
    return app, c


def test_bad_input_changes_nothing_and_actions_are_audited(tmp_path: Path) -> None:
    app, c = client_for(tmp_path)
    db = app.extensions["bbt_db"]
    page = c.get(f"/power/?school={SCHOOL}").get_data(as_text=True)
    assert "电源管理" in page and "雷雨关机" in page and "A楼 2楼" in page
    token = csrf_of(page)
    r = c.get(f"/power/preview?school={SCHOOL}&action=shutdown&floor=1楼")
    assert r.status_code == 400 and "building" in r.get_data(as_text=True)
    assert c.get(f"/power/preview?school={SCHOOL}&action=format").status_code == 400
    # unconfirmed: nothing stored
    r = c.post("/power/send", data={"csrf_token": token, "school": SCHOOL, "action": "storm", "building": "A楼"})
    assert r.status_code == 302 and "/power/preview" in r.headers["Location"]
    assert db.query("SELECT id FROM power_actions") == []
    r = c.post("/power/schedule", data={"csrf_token": token, "school": SCHOOL, "enabled": "yes",
                                        "minutes_before": "999"}, follow_redirects=True)
    assert "开机计划未保存" in r.get_data(as_text=True) and db.query("SELECT * FROM wake_schedules") == []
    r = c.post("/power/schedule", data={"csrf_token": token, "school": SCHOOL, "enabled": "yes",
                                        "minutes_before": "30"}, follow_redirects=True)
    assert "开机计划已保存" in r.get_data(as_text=True)
    assert db.query("SELECT enabled, minutes_before FROM wake_schedules") == [{"enabled": 1, "minutes_before": 30}]

    # wake: pc-101 is on (the peer of 10.5.0.0/24), pc-102 is in its subnet, pc-201 has no inventory yet
    publish(db, "pc-101", [], status=online("pc-101", datetime.now(TZ)))
    for d, ip in (("pc-101", "10.5.0.1"), ("pc-102", "10.5.0.2")):
        db.execute("UPDATE devices SET net_ip = ?, net_mask = '255.255.255.0', net_mac = ? WHERE device = ?",
                   (ip, "aa:00:00:00:00:0" + ip[-1], d))
    preview = c.get(f"/power/preview?school={SCHOOL}&action=wake&building=A楼").get_data(as_text=True)
    assert "将唤醒 2 台离线电脑（共 3 台）" in preview
    r = c.post("/power/send", data={"csrf_token": token, "school": SCHOOL, "action": "wake", "building": "A楼",
                                    "confirm": "yes"})
    assert r.status_code == 302
    page = c.get(r.headers["Location"]).get_data(as_text=True)
    assert "无网卡信息" in page and "经 pc-101 发送" in page and "已在线" in page
    data = c.get(r.headers["Location"] + "/data").get_json()
    assert {t["device"]: t["result"] for t in data["targets"]} == {
        "pc-101": "already_on", "pc-102": "waiting", "pc-201": "no_address"}
    assert data["tally"] == {"waiting": 1, "no_address": 1, "already_on": 1} and not data["done"]
    audit = db.query("SELECT actor, action, target FROM audit WHERE action LIKE 'power.%' ORDER BY id")
    assert audit == [{"actor": USERS["maintainer"][0], "action": "power.wake_schedule", "target": None},
                     {"actor": USERS["maintainer"][0], "action": "power.wake", "target": "A楼"}]
    assert c.get("/power/p-nosuch").status_code == 404
