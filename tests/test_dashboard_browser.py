"""The dashboard in headless Chromium: each role logs in and sees what it may; the main flows by clicking.

Screenshots (phone and desktop) go to test-artifacts/dashboard-*.png.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

import protocol
from bbt import demo
from tests.browser import browser, dashboard_site, login, page_as
from tests.dash import PASSWORD, SCHOOL, USERS, add_users, online, publish, school_day_at, school_hours
from tests.helpers import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = Path(ROOT) / "test-artifacts"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def seed(db: Any) -> None:
    """The demo school's 36 classrooms in several states, one with a fault, one session today."""
    from collector.devices.registry import ensure_school

    ensure_school(db, SCHOOL, "测试中学", "Asia/Shanghai")
    school = demo.build()
    for i, d in enumerate(school.devices):
        klass = USERS["class_teacher"][2] if i == 0 else d["class"]
        db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?)",
                   (SCHOOL, d["device"], klass, d["room"], d["building"], d["floor"]))
    now = school_day_at(8, 0)
    for i, d in enumerate(school.devices[:20]):
        dev = d["device"]
        events: list[tuple[str, Any, dict[str, Any]]] = [
            ("heartbeat", now, {"in_use": i % 3 == 0, "idle_s": 0, "cpu_pct": 5, "mem_pct": 30, "disk_pct": 40,
                                "uptime_s": 600})]
        if i == 0:
            events += [("session", school_day_at(8, 1), {"state": "start", "session_id": "s1"}),
                       ("session", school_day_at(8, 35), {
                           "state": "end", "session_id": "s1", "start": protocol.format_time(school_day_at(8, 1)),
                           "end": protocol.format_time(school_day_at(8, 35)), "active_s": 2000}),
                       ("software", school_day_at(8, 20), {"action": "detected", "name": "QQ游戏", "exe": "qqgame.exe",
                                                      "rule": "*游戏*"})]
        if i == 5:
            events.append(("fault", now, {"code": "display_missing", "severity": "warning", "state": "raised",
                                          "detail": "no display"}))
        publish(db, dev, events, status=online(dev, now))


class SimulatedAgent:
    """A classroom PC's command handling, over a real broker: acks every command it receives."""

    def __init__(self, port: int, device: str) -> None:
        self.received: list[dict[str, Any]] = []
        self.topic = protocol.cmd_topic(SCHOOL, device)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        self.client.on_connect = lambda c, *a: c.subscribe(self.topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.device = device

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        cmd = json.loads(msg.payload)
        self.received.append(cmd)
        client.publish(protocol.ack_topic(SCHOOL, self.device), json.dumps({"id": cmd["id"], "ok": True}), qos=1)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """Mosquitto + the collector + the dashboard (waitress) over one store, as `bbt server` runs them."""
    from alerts.engine import AlertEngine

    def seeded(db: Any) -> None:
        seed(db)
        add_users(db)
        AlertEngine(db, clock=school_hours).run_once()  # the alerts area's rules turn the seeded fault into an alert

    folder = tmp_path_factory.mktemp("live")
    with dashboard_site(folder, seeded, live=True, threads=4, UPLOAD_DIR=str(folder / "uploads")) as s:
        yield s


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 5000


NAV = {  # what each role's menu shows
    "admin": ["总览", "使用率", "设备", "电源管理", "故障与告警", "报修", "各校对比", "管理"],
    "headteacher": ["总览", "使用率", "设备", "故障与告警", "报修"],
    "class_teacher": ["总览", "使用率", "设备", "故障与告警", "报修"],
    "teacher": ["总览", "使用率", "报修"],
    "maintainer": ["总览", "设备", "电源管理", "故障与告警", "报修"],
    "bureau": ["总览", "使用率", "设备", "故障与告警", "报修", "各校对比"],
}
FORBIDDEN = {"headteacher": "/admin/users", "class_teacher": "/admin/", "teacher": "/devices/",
             "maintainer": "/admin/imports", "bureau": "/admin/"}


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
            assert "投影无信号" in page.inner_text("main")  # the catalogue's name of display_missing
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


def test_admin_imports_a_timetable_by_clicking(live: tuple[str, Any], tmp_path: Path) -> None:
    base, app = live
    bad = tmp_path / "课表-有错.csv"
    bad.write_text("class,weekday,period,teacher,subject\n七年级1班,1,1,王芳,语文\n七年级1班,8,2,李强,数学\n",
                   encoding="utf-8-sig")
    good = tmp_path / "课表.csv"
    good.write_text("class,weekday,period,teacher,subject\n" + "".join(
        f"七年级1班,{wd},{p},{'王芳' if p % 2 else '李强'},{'语文' if p % 2 else '数学'}\n"
        for wd in range(1, 6) for p in range(1, 5)), encoding="utf-8-sig")
    with browser() as b:
        page = page_as(b, base, "admin", viewport=DESKTOP)
        page.click('nav.nav >> text="管理"')  # exactly: 电源管理 also contains it
        page.click("text=导入数据")
        page.select_option("select[name=kind]", "timetable")
        page.set_input_files("input[type=file]", str(bad))
        page.click("#import-form button[type=submit]")
        err = page.inner_text("#preview .error")
        assert "课表-有错.csv：第 3 行，“星期”列" in err  # the user's file, the row and the column that are wrong
        assert page.locator("tr.bad-row").inner_text().startswith("3")
        assert page.locator("#apply-import").count() == 0
        page.select_option("select[name=kind]", "timetable")
        page.set_input_files("input[type=file]", str(good))
        page.click("#import-form button[type=submit]")
        assert "将导入 20 行" in page.inner_text("#preview")
        shot(page, "import-preview-desktop")
        page.click("#apply-import")
        assert "已导入 20 行" in page.inner_text(".flash")
    db = app.extensions["bbt_db"]
    assert db.query("SELECT COUNT(*) AS n FROM timetable WHERE school = ?", (SCHOOL,))[0]["n"] == 20
    assert db.query("SELECT action FROM audit WHERE action = 'import.timetable'")


def test_maintainer_sends_shutdown_and_sees_the_ack(live: tuple[str, Any]) -> None:
    base, app = live
    device = "pc-A102"
    agent = SimulatedAgent(app.config["BROKER"].port, device)
    try:
        with browser() as b:
            page = page_as(b, base, "maintainer", accept_dialogs=True, viewport=PHONE)  # the confirmation question
            page.goto(f"{base}/devices/{SCHOOL}/{device}")
            page.select_option("#command-kind", "shutdown")
            page.fill("#command-form input[name=text]", "本节课后关机")
            page.click("#command-form button[type=submit]")  # refused by the browser: confirm box unticked
            assert page.locator("table.commands tr[data-command]").count() == 0
            page.check("#command-form input[name=confirm]")
            page.click("#command-form button[type=submit]")
            assert "命令已发送" in page.inner_text(".flash")
            page.wait_for_selector("table.commands tr.cmd-acked", timeout=15000)  # the page refreshes itself
            assert "已确认" in page.inner_text("table.commands")
            shot(page, "device-command-acked-phone")
        assert [c["kind"] for c in agent.received] == ["shutdown"]
        assert agent.received[0]["args"] == {"delay_s": 60, "text": "本节课后关机"}
        rows = app.extensions["bbt_db"].query("SELECT actor, target FROM audit WHERE action = 'command.shutdown'")
        assert rows == [{"actor": USERS["maintainer"][0], "target": device}]
    finally:
        agent.stop()


def test_headteacher_acknowledges_an_alert_on_the_phone(live: tuple[str, Any]) -> None:
    base, app = live
    with browser() as b:
        page = page_as(b, base, "headteacher", viewport=PHONE)
        page.click("a.tile >> text=未确认告警")
        row = page.locator("table.alerts tr", has_text="pc-A106")
        assert "未确认" in row.inner_text()
        shot(page, "alerts-phone")
        row.locator("button.ack").click()
        assert "已确认告警" in page.inner_text(".flash")
        page.goto(base + "/faults/?state=acknowledged")
        row = page.locator("table.alerts tr", has_text="pc-A106")
        assert "已确认" in row.inner_text() and USERS["headteacher"][0] in row.inner_text()
    rows = app.extensions["bbt_db"].query("SELECT state, acked_by FROM alerts WHERE device = 'pc-A106'")
    assert {"state": "acknowledged", "acked_by": USERS["headteacher"][0]} in rows
