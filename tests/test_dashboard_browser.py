"""The dashboard in headless Chromium: each role logs in and sees what it may; the main flows by clicking.

Screenshots (phone and desktop) go to test-artifacts/dashboard-*.png.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import protocol
from bbt import demo
from tests.brokers import free_port
from tests.browser import browser, login
from tests.dash import PASSWORD, SCHOOL, USERS, add_users, make_app, online, publish, today_at
from tests.helpers import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = Path(ROOT) / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def seed(db: Any) -> None:
    """The demo school's 36 classrooms in several states, one with a fault, one session today."""
    from collector.registry import ensure_school

    ensure_school(db, SCHOOL, "测试中学", "Asia/Shanghai")
    school = demo.build()
    for i, d in enumerate(school.devices):
        klass = USERS["class_teacher"][2] if i == 0 else d["class"]
        db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?)",
                   (SCHOOL, d["device"], klass, d["room"], d["building"], d["floor"]))
    now = today_at(8, 0)
    for i, d in enumerate(school.devices[:20]):
        dev = d["device"]
        events: list[tuple[str, Any, dict[str, Any]]] = [
            ("heartbeat", now, {"in_use": i % 3 == 0, "idle_s": 0, "cpu_pct": 5, "mem_pct": 30, "disk_pct": 40,
                                "uptime_s": 600})]
        if i == 0:
            events += [("session", today_at(8, 1), {"state": "start", "session_id": "s1"}),
                       ("session", today_at(8, 35), {"state": "end", "session_id": "s1",
                                                     "start": protocol.format_time(today_at(8, 1)),
                                                     "end": protocol.format_time(today_at(8, 35)), "active_s": 2000}),
                       ("software", today_at(8, 20), {"action": "detected", "name": "QQ游戏", "exe": "qqgame.exe",
                                                      "rule": "*游戏*"})]
        if i == 5:
            events.append(("fault", now, {"code": "display_missing", "severity": "warning", "state": "raised",
                                          "detail": "no display"}))
        publish(db, dev, events, status=online(dev, now))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    from waitress.server import create_server

    folder = tmp_path_factory.mktemp("live")
    app = make_app(str(folder / "bbt.db"), UPLOAD_DIR=str(folder / "uploads"))
    db = app.extensions["bbt_db"]
    seed(db)
    add_users(db)
    server = create_server(app, host="127.0.0.1", port=free_port(), threads=4)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.effective_port}", app
    server.close()
    t.join(5)
    db.close()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000


NAV = {  # what each role's menu shows
    "admin": ["总览", "使用率", "设备", "故障与告警", "报修", "管理"],
    "headteacher": ["总览", "使用率", "设备", "故障与告警", "报修"],
    "class_teacher": ["总览", "使用率", "设备", "故障与告警", "报修"],
    "teacher": ["总览", "使用率", "报修"],
    "maintainer": ["总览", "设备", "故障与告警", "报修"],
}
FORBIDDEN = {"headteacher": "/admin/users", "class_teacher": "/admin/", "teacher": "/devices/",
             "maintainer": "/admin/imports"}


def test_each_role_sees_what_it_may(live: tuple[str, Any]) -> None:
    base, _ = live
    with browser() as b:
        for role, (name, _, klass) in USERS.items():
            ctx = b.new_context(viewport=PHONE if role in ("teacher", "maintainer") else DESKTOP, locale="zh-CN")
            page = ctx.new_page()
            login(page, base, name, PASSWORD)
            page.wait_for_selector("nav.nav", state="attached")
            nav = [t.strip() for t in page.locator("nav.nav a").all_inner_texts()]
            for item in NAV[role]:
                assert item in nav, f"{role} misses {item} in {nav}"
            assert ("管理" in nav) == (role == "admin")
            assert ("设备" in nav) == (role != "teacher")
            assert ("使用率" in nav) == (role != "maintainer")
            if role == "class_teacher":
                assert page.locator("li.device").count() == 1  # only their class's PC
                assert klass in page.inner_text("#floors")
            elif role in ("admin", "headteacher", "maintainer"):
                assert page.locator("li.device").count() == 36
                assert page.locator("li.device.fault").count() == 1
                assert page.locator("li.device.in_use").count() == 6  # pc 0 ended its session
            if role in FORBIDDEN:
                r = page.goto(base + FORBIDDEN[role])
                assert r is not None and r.status == 403
                assert "没有权限" in page.inner_text("main")
            ctx.close()


def test_overview_and_device_pages_phone_and_desktop(live: tuple[str, Any]) -> None:
    base, _ = live
    with browser() as b:
        for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            ctx = b.new_context(viewport=viewport, locale="zh-CN")
            page = ctx.new_page()
            login(page, base, USERS["maintainer"][0], PASSWORD)
            page.wait_for_selector("#floor-chart canvas")  # the vendored ECharts drew the floor chart
            shot(page, f"overview-{label}")
            page.click("li.device.fault a")
            page.wait_for_selector("h1 .chip.fault")
            assert "display_missing" in page.inner_text("main")
            shot(page, f"device-fault-{label}")
            page.goto(base + f"/devices/{SCHOOL}/pc-A101")
            assert "QQ游戏" in page.inner_text("main")
            assert page.locator(".tl-bar i.use").count() >= 1
            shot(page, f"device-{label}")
            ctx.close()


def test_language_switch_persists(live: tuple[str, Any]) -> None:
    base, _ = live
    with browser() as b:
        ctx = b.new_context(viewport=PHONE, locale="zh-CN")
        page = ctx.new_page()
        login(page, base, USERS["headteacher"][0], PASSWORD)
        page.click("a.lang")
        assert "Device overview" in page.inner_text("h1")
        page.goto(base + "/devices/")
        assert "Devices" in page.inner_text("h1")
        ctx.close()
        ctx = b.new_context(viewport=PHONE, locale="en-US")  # a browser asking for English
        page = ctx.new_page()
        page.goto(base + "/login")
        assert "Log in" in page.inner_text("h1")
        ctx.close()
