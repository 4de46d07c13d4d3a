"""Protection state (病毒防护, 安全补丁) and the USB allow-list (严禁无关U盘) through real ingest
(Mosquitto, the collector) and the alert engine: faults in the register raised and cleared, one alert
for a volume not on the list and none for one on it."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import protocol
from alerts import config, rules, store
from alerts.engine import AlertEngine
from alerts.rules import Device
from alerts.schedule import StaticSchedule
from collector.devices import policy
from collector.devices.ingest import EventRow
from collector.intake import protection
from collector.intake.store import touch_device
from tests.alert_rig import Rig, school_config
from tests.brokers import Mosquitto
from tests.helpers import wait_for
from tests.webhook import WebhookReceiver

DAY = 86400.0


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


def open_faults(db: Any) -> dict[str, Any]:
    return {a["code"]: a for a in store.list_alerts(db, "s1", "open") if a["kind"] == "fault"}


def test_protection_events_raise_and_clear_register_faults(mosquitto: Mosquitto, tmp_path: Path,
                                                           receiver: WebhookReceiver) -> None:
    rig = Rig(tmp_path, mosquitto.port, receiver)
    rig.import_devices([("pc-301", "301", "", "3")])
    rig.configure(school_config(receiver))
    rig.start()
    try:
        rig.power_on(["pc-301"])
        dev, now = rig.devices["pc-301"], rig.simclock.now()
        dev._event("protection", {
            "enabled": False, "products": [{"name": "360杀毒", "enabled": False, "up_to_date": False}],
            "scanner": "Microsoft Defender", "signature_age_d": 12, "threats": 1,
            "threat_names": ["Trojan:Win32/Wacatac.B!ml"], "pending_security": 3,
            "pending_since": protocol.format_time(now - timedelta(days=20))}, now)
        got = wait_for(lambda: open_faults(rig.db) if len(open_faults(rig.db)) == 4 else None, 15,
                       what="four protection alerts")
        assert {c: a["subject"] for c, a in got.items()} == {
            "virus": "发现病毒", "av_off": "病毒防护未开启", "av_outdated": "病毒库过期",
            "patches_pending": "安全补丁未安装"}
        assert got["virus"]["severity"] == "critical" and got["av_off"]["severity"] == "warning"
        assert "Trojan:Win32/Wacatac.B!ml" in got["virus"]["detail"]
        assert "病毒库已 12 天未更新" in got["av_outdated"]["detail"]
        tickets = rig.db.query("SELECT code, reporter FROM fault_tickets WHERE device = 'pc-301' ORDER BY code")
        assert [(t["code"], t["reporter"]) for t in tickets] == [
            ("av_off", "protection"), ("av_outdated", "protection"), ("patches_pending", "protection"),
            ("virus", "protection")]
        wait_for(lambda: [m for m in receiver.of("wecom") if "发现病毒 (virus)" in m.text], 10, what="the bot message")
        # an older report replayed late changes nothing; a clean one clears everything
        dev._event("protection", {"enabled": True}, now - timedelta(hours=1))
        time.sleep(1.0)
        assert len(open_faults(rig.db)) == 4
        clean = {"enabled": True, "products": [{"name": "Windows Defender", "enabled": True, "up_to_date": True}],
                 "signature_age_d": 0, "threats": 0, "pending_security": 0}
        dev._event("protection", clean, now + timedelta(minutes=1))
        wait_for(lambda: not open_faults(rig.db), 15, what="the protection alerts resolved")
        assert not rig.db.query("SELECT 1 AS x FROM faults WHERE device = 'pc-301' AND cleared_t IS NULL")
        st = protection.state(rig.db, "s1", "pc-301")
        assert st is not None and st["data"]["enabled"] is True and st["problems"] == []
    finally:
        rig.stop()


def test_usb_volume_off_the_list_raises_one_alert(mosquitto: Mosquitto, tmp_path: Path,
                                                  receiver: WebhookReceiver) -> None:
    rig = Rig(tmp_path, mosquitto.port, receiver)
    rig.import_devices([("pc-302", "302", "", "3")])
    rig.configure(school_config(receiver))
    policy.set_policy(rig.db, "s1", {"usb": {"allow_labels": ["教学U盘"], "allow_ids": ["0781:5581"]}})
    rig.start()
    try:
        rig.power_on(["pc-302"])
        dev, now = rig.devices["pc-302"], rig.simclock.now()
        time.sleep(0.5)  # the engine's first pass: events count from then on
        dev._event("usb", {"action": "inserted", "kind": "storage", "label": "教学U盘", "size_mb": 7680}, now)
        dev._event("usb", {"action": "inserted", "kind": "storage", "label": "SANDISK", "size_mb": 30000,
                           "vendor_id": "0781", "product_id": "5581"}, now)
        dev._event("usb", {"action": "inserted", "kind": "storage", "label": "KINGSTON", "size_mb": 15000,
                           "vendor_id": "0951", "product_id": "1666"}, now)
        dev._event("usb", {"action": "removed", "kind": "storage", "label": "KINGSTON"}, now)
        dev._event("usb", {"action": "inserted", "kind": "storage", "label": "KINGSTON", "size_mb": 15000,
                           "vendor_id": "0951", "product_id": "1666"}, now + timedelta(minutes=1))
        wait_for(lambda: rig.db.query("SELECT COUNT(*) AS n FROM events WHERE type = 'usb'")[0]["n"] == 5, 10,
                 what="five usb events stored")
        alerts = wait_for(lambda: [a for a in store.list_alerts(rig.db, "s1", "open") if a["kind"] == "usb"], 10,
                          what="the usb alert")
        time.sleep(1.0)  # a few more passes: nothing more comes
        alerts = [a for a in store.list_alerts(rig.db, "s1", "open") if a["kind"] == "usb"]
        assert len(alerts) == 1, alerts
        assert alerts[0]["subject"] == "插入未登记的U盘 “KINGSTON”（严禁与教学无关的U盘）"
        assert alerts[0]["code"] == "0951:1666" and alerts[0]["detail"] == "KINGSTON 0951:1666 15000 MB"
    finally:
        rig.stop()


def test_usb_rule_in_lessons_and_off_hours_separately() -> None:
    dev = Device("s1", "pc-1", "301")
    data = {"action": "inserted", "label": "GAMES"}
    pol = protocol.validate_usb_policy({"allow_labels": ["KIT"]})
    both = config.DEFAULT_RULES["usb"]
    lesson = rules.usb_alert(dev, data, 1.0, True, pol, both)
    assert lesson is not None and lesson.severity == "warning" and lesson.subject.startswith("上课时插入")
    off = rules.usb_alert(dev, data, 1.0, False, pol, both)
    assert off is not None and off.severity == "info"
    assert rules.usb_alert(dev, data, 1.0, False, pol, dict(both, off_hours=False)) is None
    assert rules.usb_alert(dev, data, 1.0, True, pol, dict(both, in_lessons=False)) is None
    assert rules.usb_alert(dev, dict(data, label="kit"), 1.0, True, pol, both) is None
    blocked = rules.usb_alert(dev, dict(data, blocked=True), 1.0, False, pol, both)
    assert blocked is not None and "已阻止" in blocked.subject


def test_thresholds_are_the_rules_options() -> None:
    t = 1_800_000_000.0
    fresh = {"enabled": True, "signature_age_d": 3, "pending_security": 2,
             "pending_since": protocol.format_time(protocol.parse_time("2027-01-05T00:00:00Z"))}
    assert protection.problems(fresh, t, {}) == []
    assert [p.code for p in protection.problems(fresh, t, {"signature_days": 2})] == ["av_outdated"]
    assert [p.code for p in protection.problems(fresh, t, {"patch_days": 5})] == ["patches_pending"]
    # Windows: the last installed update, and Security Center's "not up to date"
    win = {"enabled": True, "products": [{"name": "Defender", "enabled": True, "up_to_date": False}],
           "last_update": protocol.format_time(protocol.parse_time("2026-10-01T00:00:00Z"))}
    found = {p.code: p.detail for p in protection.problems(win, t, {})}
    assert set(found) == {"av_outdated", "patches_pending"}
    assert found["av_outdated"] == "病毒库不是最新（Defender）"
    assert "最近一次安装更新在 2026-10-01" in found["patches_pending"]
    # the age comes from the signatures' date where no age is sent; measured at the report, not now
    dated = {"enabled": True, "signatures_t": protocol.format_time(protocol.parse_time("2027-01-01T00:00:00Z"))}
    assert protection.signature_age(dated, t) == pytest.approx((t - 1_798_761_600) / DAY)
    with pytest.raises(config.ConfigError, match="signature_days"):
        config.validate({"rules": {"protection": {"signature_days": 0}}})
    with pytest.raises(config.ConfigError, match="severity_threat"):
        config.validate({"rules": {"protection": {"severity_threat": "urgent"}}})


def test_state_kept_per_device_and_rule_changes_reevaluate(db: Any) -> None:
    """On SQLite and PostgreSQL: the newest state wins; a threshold change re-reads every state; the
    rule switched off clears its faults."""
    now = time.time()
    touch_device(db, "s1", "pc-9", now)
    config.save(db, "s1", {"rules": {"left_on": {"enabled": False}, "agent_silent": {"enabled": False}}})

    def report(data: dict[str, Any], t: float) -> None:
        row = EventRow("s1", "pc-9", f"e{t}", 0, "protection", "x", t, data, False, json.dumps(data), now)
        with db.transaction():
            protection.apply_protection(db, row)

    report({"enabled": True, "signature_age_d": 5}, now - 100)
    report({"enabled": True, "signature_age_d": 9}, now - 3600)  # older: ignored
    engine = AlertEngine(db, StaticSchedule({}, term=True), weekly=None)
    engine.run_once()
    assert open_faults(db) == {}
    config.save(db, "s1", {"rules": {"protection": {"signature_days": 4}, "left_on": {"enabled": False},
                                     "agent_silent": {"enabled": False}}})
    engine.run_once()
    assert set(open_faults(db)) == {"av_outdated"}
    config.save(db, "s1", {"rules": {"protection": {"enabled": False}, "left_on": {"enabled": False},
                                     "agent_silent": {"enabled": False}}})
    engine.run_once()
    assert open_faults(db) == {}
