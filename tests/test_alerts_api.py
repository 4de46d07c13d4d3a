"""/api/v1/alerts (protocol.md §4), acknowledgement (API and signed link), the fault register over HTTP."""
from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from openpyxl import load_workbook

from alerts import store
from alerts.evaluate import evaluate_school
from alerts.notify import Dispatcher
from alerts.schedule import NoSchedule
from collector.intake.store import open_fault, touch_device
from dashboard import create_app
from dashboard.users import add_user, create_token


@pytest.fixture
def app_for(db_url: str) -> Iterator[Callable[[], Any]]:
    apps: list[Any] = []

    def make() -> Any:
        apps.append(create_app({"BBT_DB": db_url, "TESTING": True}))
        return apps[-1]

    yield make
    for app in apps:
        app.extensions["bbt_db"].close()


def _setup(db: Any, make_app: Callable[[], Any]) -> tuple[Any, dict[str, str]]:
    now = time.time()
    for dev, klass in (("pc-301", "301"), ("pc-302", "302")):
        touch_device(db, "s1", dev, now)
        db.execute("UPDATE devices SET class = ?, floor = '3' WHERE device = ?", (klass, dev))
    open_fault(db, "s1", "pc-301", "display_missing", "warning", "agent", "HDMI", now - 60, "e1")
    open_fault(db, "s1", "pc-302", "overheat", "critical", "agent", None, now - 30, "e2")
    evaluate_school(db, "s1", now, NoSchedule(), [])
    tokens = {}
    people: list[tuple[str, str, str | None]] = [("admin1", "admin", None), ("wang", "maintainer", None),
                                                 ("ct301", "class_teacher", "301"), ("t1", "teacher", None)]
    for name, role, their_class in people:
        add_user(db, name, role, "password-123", None if role == "admin" else "s1", their_class,
                 must_change=False)
        tokens[name] = create_token(db, name)
    return make_app(), tokens


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_alerts_endpoint_follows_the_contract_and_ack_works(db: Any, app_for: Callable[[], Any]) -> None:
    app, tok = _setup(db, app_for)
    c = app.test_client()
    r = c.get("/api/v1/alerts?school=s1&state=open", headers=_h(tok["admin1"]))
    assert r.status_code == 200
    rows = r.get_json()
    assert [set(x) for x in rows] == [{"id", "kind", "severity", "device", "opened", "acked_by", "state"}] * 2
    by_dev = {x["device"]: x for x in rows}
    assert by_dev["pc-302"]["severity"] == "critical" and by_dev["pc-301"]["kind"] == "fault"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$", by_dev["pc-301"]["opened"])
    assert all(x["state"] == "firing" and x["acked_by"] is None for x in rows)

    assert c.post(f"/api/v1/alerts/{by_dev['pc-301']['id']}/ack", headers=_h(tok["t1"])).status_code == 403
    r = c.post(f"/api/v1/alerts/{by_dev['pc-301']['id']}/ack", headers=_h(tok["wang"]))
    assert r.status_code == 200 and r.get_json()["state"] == "acknowledged"
    rows = c.get("/api/v1/alerts?school=s1&state=open", headers=_h(tok["wang"])).get_json()
    assert {x["device"]: (x["state"], x["acked_by"]) for x in rows}["pc-301"] == ("acknowledged", "wang")

    assert c.post(f"/api/v1/alerts/{by_dev['pc-301']['id']}/ack", headers=_h(tok["ct301"])).status_code == 403
    mine = c.get("/api/v1/alerts?school=s1&state=open", headers=_h(tok["ct301"])).get_json()
    assert [x["device"] for x in mine] == ["pc-301"]
    assert c.get("/api/v1/alerts?school=s1", headers=_h(tok["t1"])).status_code == 403
    assert c.get("/api/v1/alerts?school=s1&state=bogus", headers=_h(tok["admin1"])).status_code == 400
    assert c.get("/api/v1/alerts?school=s1").status_code == 401


def test_signed_link_shows_then_acknowledges_and_rejects_tampering(db: Any, app_for: Callable[[], Any]) -> None:
    app, _ = _setup(db, app_for)
    ids = sorted(a["id"] for a in store.list_alerts(db, "s1", "open"))
    link = Dispatcher(db, base_url="http://x").ack_link({}, ids, "王师傅")
    assert link is not None
    assert Dispatcher(db, base_url="http://x").ack_link({}, list(range(1, 100)), "p") == "http://x/faults/"  # too many
    path = link.replace("http://x", "")
    c = app.test_client()
    page = c.get(path)
    assert page.status_code == 200 and "收到，由 王师傅 处理" in page.get_data(as_text=True)
    assert all(a["state"] == "firing" for a in store.list_alerts(db, "s1", "open"))  # a preview must not ack
    forged = path.replace(f"ids={ids[0]},", "ids=")
    assert c.get(forged).status_code == 400
    token = re.search(r"name=\"csrf_token\" value=\"([^\"]+)\"", page.get_data(as_text=True))
    assert token is not None
    q = dict(p.split("=", 1) for p in path.split("?", 1)[1].split("&"))
    r = c.post("/alerts/ack", data={"csrf_token": token.group(1), "ids": q["ids"], "by": "王师傅", "t": q["t"]})
    assert r.status_code == 200 and "已确认" in r.get_data(as_text=True)
    assert {a["acked_by"] for a in store.list_alerts(db, "s1", "open")} == {"王师傅"}
    r = c.post("/alerts/ack", data={"csrf_token": token.group(1), "ids": q["ids"], "by": "someone", "t": q["t"]})
    assert r.status_code == 400


def test_fault_register_report_repair_stats_and_xlsx(db: Any, app_for: Callable[[], Any]) -> None:
    app, tok = _setup(db, app_for)
    c = app.test_client()
    evaluate_school(db, "s1", time.time(), NoSchedule(), [])  # tickets for the agents' faults
    r = c.post("/api/v1/faults", headers=_h(tok["ct301"]),
               json={"school": "s1", "device": "pc-301", "code": "power_cut", "severity": "critical",
                     "summary": "整栋楼停电", "opened": "2026-11-23T08:00:00+08:00",
                     "cleared": "2026-11-23T09:30:00+08:00"})
    assert r.status_code == 201, r.get_json()
    ticket = r.get_json()
    assert ticket["reporter"] == "ct301" and ticket["title"] == "停电" and ticket["reported"] == "2026-11-23 08:00"
    [fault] = db.query("SELECT * FROM faults WHERE code = 'power_cut'")
    assert (fault["severity"], fault["source"]) == ("critical", "person")
    assert fault["cleared_t"] - fault["opened_t"] == 90 * 60  # usage leaves these lessons out (protocol.md §3)
    bad = c.post("/api/v1/faults", headers=_h(tok["ct301"]), json={"school": "s1", "device": "pc-301",
                                                                   "severity": "huge"})
    assert bad.status_code == 400 and "severity" in bad.get_json()["message"]
    assert c.post("/api/v1/faults", headers=_h(tok["ct301"]),
                  json={"school": "s1", "device": "pc-302", "code": "pc"}).status_code == 403

    agent_ticket = next(t for t in c.get("/api/v1/faults?school=s1", headers=_h(tok["wang"])).get_json()
                        if t["code"] == "display_missing")
    assert agent_ticket["reporter"] == "agent" and agent_ticket["class"] == "301"
    assert c.patch(f"/api/v1/faults/{agent_ticket['id']}", headers=_h(tok["ct301"]), json={}).status_code == 403
    r = c.patch(f"/api/v1/faults/{agent_ticket['id']}", headers=_h(tok["wang"]),
                json={"cause": "HDMI 线松动", "responsibility": "无", "handling": "重新插紧", "repair_record": "已修复",
                      "parts": "HDMI 线 1 根", "close": True})
    assert r.status_code == 200 and r.get_json()["closed_by"] == "wang" and r.get_json()["parts"] == "HDMI 线 1 根"
    assert db.query("SELECT cleared_t FROM faults WHERE code = 'display_missing'")[0]["cleared_t"] is not None
    assert c.patch(f"/api/v1/faults/{agent_ticket['id']}", headers=_h(tok["wang"]),
                   json={"owner": "x"}).status_code == 400

    stats = c.get("/api/v1/faults/stats?school=s1", headers=_h(tok["wang"])).get_json()
    assert stats["tickets"] == 3 and stats["open"] == 2 and stats["mttr_min"] is not None
    assert stats["per_device"] == {"pc-301": 2, "pc-302": 1}
    x = c.get("/api/v1/faults.xlsx?school=s1&term=2026-11-23", headers=_h(tok["wang"]))
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.data))
    ws = wb["故障登记簿"]
    header = [cell.value for cell in ws[1]]
    assert header[:6] == ["编号", "设备", "班级", "教室", "故障代码", "故障"] and "维修记录" in header
    assert ws.max_row == 4
    wb.close()
