"""Alerts end to end: simulated PCs -> Mosquitto -> collector -> alert engine -> apprise -> webhook receiver."""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts import store
from alerts.schedule import StaticSchedule
from tests.alert_rig import DING_SECRET, DING_TOKEN, ManualClock, Rig, local_ts, school_config
from tests.brokers import Mosquitto
from tests.helpers import wait_for
from tests.webhook import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver({DING_TOKEN: DING_SECRET}) as r:
        yield r


def test_fault_reaches_the_bot_after_group_wait_and_clearing_resolves_it(
        mosquitto: Mosquitto, tmp_path: Path, receiver: WebhookReceiver) -> None:
    rig = Rig(tmp_path, mosquitto.port, receiver)
    rig.import_devices([("pc-302", "302", "", "3")])
    rig.configure(school_config(receiver))
    rig.start()
    try:
        rig.power_on(["pc-302"])
        t0 = time.time()
        rig.fault("pc-302", "display_missing")
        msg = wait_for(lambda: receiver.of("wecom"), 10, what="the WeCom message")[0]
        assert msg.key == "maintkey"
        assert re.match(r"3楼 302班 投影无信号 \(display_missing\) \d\d:\d\d", msg.text), msg.text
        assert "收到请点：http://bbt.school.test/alerts/ack?ids=" in msg.text
        assert 1.0 <= msg.t - t0 <= 1.0 + 5.0  # group_wait 1 s, then within 5 s
        [alert] = store.list_alerts(rig.db, "s1", "open")
        assert (alert["kind"], alert["severity"], alert["state"]) == ("fault", "warning", "firing")

        rig.fault("pc-302", "display_missing", state="cleared")
        resolved = wait_for(lambda: receiver.of("wecom")[1:], 10, what="the resolved notice")[0]
        assert resolved.text.startswith("3楼 302班 投影无信号 (display_missing)") and "已恢复" in resolved.text
        assert (store.get(rig.db, alert["id"]) or {}).get("state") == "resolved"
        assert store.list_alerts(rig.db, "s1", "open") == []
        assert receiver.rejected == []
    finally:
        rig.stop()


def test_a_floor_losing_power_is_one_message(mosquitto: Mosquitto, tmp_path: Path, receiver: WebhookReceiver) -> None:
    now = time.time()
    classes = [f"3{i:02d}" for i in range(1, 31)]
    sched = StaticSchedule({c: [(now - 600, now + 1800)] for c in classes}, term=True)
    rig = Rig(tmp_path, mosquitto.port, receiver, schedule=sched)
    rig.import_devices([(f"pc-{c}", c, "教学楼", "3") for c in classes])
    rig.configure(school_config(receiver, group_wait_s=1.5))
    rig.start()
    try:
        rig.power_on([f"pc-{c}" for c in classes])
        wait_for(lambda: len(rig.db.query("SELECT 1 AS x FROM devices WHERE online = 1")) == 30, 15,
                 what="30 devices online")
        cut = [threading.Thread(target=dev.kill) for dev in rig.devices.values()]
        for th in cut:  # the power goes: the broker publishes every Last Will
            th.start()
        for th in cut:
            th.join()
        wait_for(lambda: receiver.of("wecom"), 15, what="the outage message")
        time.sleep(2.5)  # more than group_wait: nothing else may follow
        msgs = receiver.of("wecom")
        assert len(msgs) == 1, [m.text for m in msgs]
        text = msgs[0].text
        assert text.startswith("教学楼 3楼") and "30 台设备同时离线" in text and "【紧急】" in text
        open_ = store.list_alerts(rig.db, "s1", "open")
        assert {a["kind"] for a in open_} == {"floor_offline", "offline_in_lesson"}
        assert sum(a["kind"] == "offline_in_lesson" for a in open_) == 30  # recorded, but inhibited
    finally:
        rig.stop()


def test_quiet_hours_hold_a_warning_until_seven_and_let_a_critical_through(
        mosquitto: Mosquitto, tmp_path: Path, receiver: WebhookReceiver) -> None:
    clock = ManualClock(local_ts(2026, 11, 23, 23, 0))
    rig = Rig(tmp_path, mosquitto.port, receiver, clock=clock)
    rig.import_devices([("pc-101", "101", "", "1"), ("pc-102", "102", "", "1")])
    rig.configure(school_config(receiver, quiet_hours={"start": "22:00", "end": "07:00"}, repeat_interval_min=0))
    rig.start()
    try:
        rig.power_on(["pc-101", "pc-102"])
        rig.fault("pc-101", "disk_full", "warning")
        rig.fault("pc-102", "overheat", "critical")
        first = wait_for(lambda: receiver.of("wecom"), 10, what="the critical message")
        time.sleep(1.5)
        assert len(receiver.of("wecom")) == 1 and "温度过高 (overheat)" in first[0].text
        assert "【紧急】" in first[0].text
        clock.set(local_ts(2026, 11, 24, 6, 59))
        time.sleep(1.0)
        assert len(receiver.of("wecom")) == 1  # still quiet at 06:59
        clock.set(local_ts(2026, 11, 24, 7, 0))
        morning = wait_for(lambda: receiver.of("wecom")[1:], 10, what="the morning message")
        assert "磁盘已满 (disk_full)" in morning[0].text
    finally:
        rig.stop()


def test_an_unacknowledged_alert_escalates_and_acknowledging_stops_it(
        mosquitto: Mosquitto, tmp_path: Path, receiver: WebhookReceiver) -> None:
    t0 = time.time()
    clock = ManualClock(t0)
    rig = Rig(tmp_path, mosquitto.port, receiver, clock=clock)
    rig.import_devices([("pc-201", "201", "", "2"), ("pc-202", "202", "", "2")])
    routes = [{"match": {"min_severity": "warning"}, "channels": ["maint"],
               "escalate": [{"after_min": 10, "channels": ["boss"]}]}]
    rig.configure(school_config(receiver, routes=routes, group_by=["device"]))
    rig.start()
    try:
        rig.power_on(["pc-201", "pc-202"])
        rig.fault("pc-201", "projector", "warning")
        rig.fault("pc-202", "projector", "warning")
        wait_for(lambda: len(receiver.of("wecom")) == 2, 10, what="two first messages")
        acked = next(a for a in store.list_alerts(rig.db, "s1", "open") if a["device"] == "pc-202")
        store.acknowledge(rig.db, acked["id"], "王师傅", clock())
        clock.set(t0 + 11 * 60)
        esc = wait_for(lambda: receiver.of("dingtalk"), 10, what="the escalation to DingTalk")
        time.sleep(1.0)
        assert len(receiver.of("dingtalk")) == 1 and receiver.rejected == []  # signed correctly
        assert esc[0].text.startswith("2楼 201班 投影机故障") and "分钟未确认" in esc[0].text
        assert "by=%E6%9D%8E%E4%B8%BB%E4%BB%BB" in esc[0].text  # the link acknowledges as 李主任
    finally:
        rig.stop()


def test_a_burst_of_200_alerts_respects_the_rate_limit_and_loses_none(
        mosquitto: Mosquitto, tmp_path: Path, receiver: WebhookReceiver) -> None:
    window = 3.0
    rig = Rig(tmp_path, mosquitto.port, receiver, rate_window_s=window)
    names = [f"pc-{i:02d}" for i in range(10)]
    rig.import_devices([(n, f"c{i}", "", "1") for i, n in enumerate(names)])
    rig.configure(school_config(receiver, group_by=["fingerprint"], group_wait_s=0))
    rig.start()
    try:
        rig.power_on(names)
        for wave in range(4):
            for n in names:
                for k in range(5):
                    rig.fault(n, f"code_{wave}_{k}")
            time.sleep(0.4)
        wait_for(lambda: rig.db.query("SELECT COUNT(*) AS n FROM alert_notices WHERE status = 'sent'")[0]["n"] == 200,
                 30, what="all 200 notices sent")
        msgs = receiver.of("wecom")
        times = [m.t for m in msgs]
        assert all(sum(1 for u in times if t <= u < t + window) <= 20 for t in times)
        listed = sum(len(re.findall(r"\(code_\d_\d\)", m.text)) for m in msgs)
        merged = sum(int(x) for m in msgs for x in re.findall(r"另有 (\d+) 条", m.text))

        assert listed + merged == 200 and len(msgs) < 200
        assert len(store.list_alerts(rig.db, "s1", "open")) == 200
    finally:
        rig.stop()
