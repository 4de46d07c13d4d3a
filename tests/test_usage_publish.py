"""公布 the week from the dashboard (issue 20): what awaits review first, a confirmation step, the same
collector function as the CLI (publish_week), audited; corrections listed after publication."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.faultlog import sync_tickets
from collector.rates import fault_review, usage
from dashboard.users import add_user
from tests.dash import PASSWORD, csrf_of, login, make_app
from tests.test_usage_week import S, import_school, script
from tests.usage_script import ingest

W = "2026-W19"
URL = f"/usage/publish?school={S}&week={W}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = Path(tmp_path_factory.mktemp("publish"))
    app = make_app(str(tmp / "bbt.db"))
    db = app.extensions["bbt_db"]
    import_school(db, tmp)
    assert ingest(db, S, script()) > 100  # pc2's display_missing of Thursday awaits review (待核实)
    sync_tickets(db, S, time.time())
    add_user(db, "boss", "headteacher", PASSWORD, S, must_change=False)
    for name, role in (("王", "teacher"), ("root", "admin"), ("修理工", "maintainer")):
        db.execute("INSERT INTO users (name, role, school, password_hash, must_change, password_changed, created) "
                   "SELECT ?, ?, ?, password_hash, 0, password_changed, created FROM users WHERE name = 'boss'",
                   (name, role, S))
    yield app
    db.close()


def client_of(app: Any, name: str) -> Any:
    c = app.test_client()
    assert login(c, name).status_code == 302
    return c


def test_teacher_may_not_publish(app: Any) -> None:
    c = client_of(app, "王")
    assert c.get(URL).status_code == 403
    token = csrf_of(c.get("/usage/teachers").get_data(as_text=True))
    assert c.post(URL, data={"csrf_token": token, "action": "publish"}).status_code == 403
    assert usage.published(app.extensions["bbt_db"], S, W) is None


def test_admin_gets_links_to_review(app: Any) -> None:
    html = client_of(app, "root").get(URL).get_data(as_text=True)
    assert "去核实" in html and "/faults/tickets/" in html


def test_headteacher_publishes_after_seeing_what_awaits_review(app: Any) -> None:
    db = app.extensions["bbt_db"]
    c = client_of(app, "boss")
    html = c.get(URL).get_data(as_text=True)
    assert "未公布" in html and "pc2" in html and "投影无信号" in html and "display_missing" not in html
    assert html.index('id="pending"') < html.index('id="publish-form"')  # what awaits review comes first
    assert "核实由维修人员或管理员在故障登记中完成" in html  # a headteacher does not review: no ticket link
    token = csrf_of(html)
    confirm = c.post(URL, data={"csrf_token": token, "action": "confirm"})
    assert confirm.status_code == 200 and 'id="publish-confirm"' in confirm.get_data(as_text=True)
    assert usage.published(db, S, W) is None  # the confirmation step publishes nothing
    assert c.post(URL, data={"action": "publish"}).status_code == 400  # no CSRF token
    done = c.post(URL, data={"csrf_token": token, "action": "publish"})
    assert done.status_code == 302
    frozen = usage.published(db, S, W)
    assert frozen is not None and frozen["published_by"] == "boss" and frozen["awaiting_review"] > 0
    [entry] = db.query("SELECT actor, target, detail FROM audit WHERE action = 'usage.publish'")
    assert (entry["actor"], entry["target"]) == ("boss", W) and '"awaiting_review"' in entry["detail"]
    page = c.get(URL).get_data(as_text=True)
    assert "已公布" in page and '由 <span translate="no">boss</span> 公布' in page and 'id="publish-form"' not in page
    assert "待核实的故障登记" in page and "按实际测量计入" in page  # the review warning, flashed once
    assert "公布后还没有更正" in page
    again = c.post(URL, data={"csrf_token": token, "action": "publish"})  # publishing twice keeps the first
    assert again.status_code == 200 and (usage.published(db, S, W) or {})["published"] == frozen["published"]
    assert len(db.query("SELECT id FROM audit WHERE action = 'usage.publish'")) == 1


def test_a_later_review_shows_as_a_correction(app: Any) -> None:
    db = app.extensions["bbt_db"]
    assert usage.published(db, S, W) is not None
    [f] = db.query("SELECT id FROM faults WHERE school = ? AND code = 'display_missing'", (S,))
    fault_review.review_fault(db, f["id"], "confirmed", "修理工")
    html = client_of(app, "boss").get(URL).get_data(as_text=True)
    corrections = html.split('id="corrections"')[1]
    assert "修理工" in corrections and "确认影响上课" in corrections and "pc2 投影无信号" in corrections
    assert "→" in corrections and "没有待核实的故障登记" in html


def test_a_future_week_cannot_be_published(app: Any) -> None:
    c = client_of(app, "boss")
    token = csrf_of(c.get(URL).get_data(as_text=True))
    r = c.post(f"/usage/publish?school={S}&week=2099-W01", data={"csrf_token": token, "action": "publish"})
    assert r.status_code == 400
    assert usage.published(app.extensions["bbt_db"], S, "2099-W01") is None
