"""The 电源管理 page in headless Chromium: a maintainer shuts down one floor of a building (preview,
confirmation, results arriving, tally) over a real Mosquitto and the collector; PCs simulated at the
MQTT boundary (one acks, one refuses)."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest

import protocol
from tests.browser import browser, dashboard_site, page_as, school_and_users
from tests.dash import SCHOOL, USERS, online, publish

pytestmark = pytest.mark.browser


class PC:
    def __init__(self, port: int, device: str, refuse: str | None = None) -> None:
        self.device, self.refuse, self.received = device, refuse, []  # type: ignore[var-annotated]
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(protocol.cmd_topic(SCHOOL, device), qos=1)
        assert ready.wait(5)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        cmd = json.loads(msg.payload)
        self.received.append(cmd)
        ack = {"id": cmd["id"], "ok": not self.refuse, **({"error": self.refuse} if self.refuse else {})}
        # a moment later, so that the results page shows them arriving
        threading.Timer(2.0, client.publish, (protocol.ack_topic(SCHOOL, self.device), json.dumps(ack), 1)).start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def live(tmp_path: Any) -> Iterator[tuple[str, Any]]:
    def seed(db: Any) -> None:
        school_and_users(db)  # A楼: pc-101, pc-102 on 1楼, pc-201 on 2楼
        db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?)",
                   (SCHOOL, "pc-103", "七年级3班", "A103", "A楼", "1楼"))  # off
        now = datetime.now().astimezone()
        for dev in ("pc-101", "pc-102", "pc-201"):
            publish(db, dev, [], status=online(dev, now))

    with dashboard_site(tmp_path, seed, live=True, threads=4) as s:
        yield s


def test_maintainer_shuts_a_floor_down_and_sees_the_tally(live: tuple[str, Any]) -> None:
    base, app = live
    port = app.config["BROKER"].port
    pcs = {d: PC(port, d, refuse="signature: unsigned" if d == "pc-102" else None)
           for d in ("pc-101", "pc-102", "pc-201")}
    try:
        with browser() as b:
            page = page_as(b, base, "maintainer", accept_dialogs=True)
            page.click("nav >> text=电源管理")
            page.select_option("#building", "A楼")
            page.select_option("#floor", "1楼")
            page.select_option("#action", "shutdown")
            page.click("#group-form button[type=submit]")
            # the preview: the floor's PCs, which ones the command reaches
            assert "将发送给 2 台在线电脑（共 3 台" in page.inner_text("#reach-summary")
            reach = page.locator("#preview tr.reach").evaluate_all("rows => rows.map(r => r.dataset.device)")
            assert sorted(reach) == ["pc-101", "pc-102"]
            assert page.locator('#preview tr.skip[data-device="pc-103"]').count() == 1
            page.click("#send-form button[type=submit]")  # the browser refuses: confirmation unticked
            assert not any(p.received for p in pcs.values())
            page.check("#send-form input[name=confirm]")
            page.click("#send-form button[type=submit]")
            assert page.get_attribute("#tally", "data-done") == "0" and "等待确认 2" in page.inner_text("#tally")
            page.wait_for_selector('#tally[data-done="1"]', timeout=15000)  # results arrive by polling
            tally = page.inner_text("#tally")
            assert "已执行 1" in tally and "被拒绝 1" in tally and "离线（未发送） 1" in tally and "共 3 台" in tally
            assert page.inner_text('#results tr[data-device="pc-102"] td.note') == "signature: unsigned"
            assert page.inner_text('#results tr[data-device="pc-101"] td.result') == "已执行"
        assert not pcs["pc-201"].received, "2楼 got nothing"
        assert [c["kind"] for c in pcs["pc-101"].received] == ["shutdown"]
        rows = app.extensions["bbt_db"].query("SELECT actor, action, target FROM audit WHERE action LIKE 'power.%'")
        assert rows == [{"actor": USERS["maintainer"][0], "action": "power.shutdown", "target": "A楼 1楼"}]
    finally:
        for p in pcs.values():
            p.stop()
