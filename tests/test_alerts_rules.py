"""The pure parts: rules, routing, quiet hours, inhibition, silences, messages, config checks."""
from __future__ import annotations

from datetime import datetime

import pytest

from alerts import config, messages, routing, rules
from alerts.rules import Device
from alerts.schedule import StaticSchedule, term_cutoff
from tests.alert_rig import TZ, local_ts


def dev(name: str, online: bool = True, reason: str | None = "startup", floor: str | None = "3",
        klass: str | None = None, last_seen: float | None = None) -> Device:
    return Device("s1", name, klass or name[-3:], None, "A", floor, online, reason, last_seen)


def test_floor_offline_needs_most_of_the_floor_lost_not_shut_down() -> None:
    lost = [dev(f"pc-30{i}", False, "lost") for i in range(8)]
    up = [dev("pc-309"), dev("pc-310")]
    shut = [dev(f"pc-31{i}", False, "shutdown") for i in range(5)]
    [c] = rules.floor_offline(lost + up + shut, {"min_devices": 3, "ratio": 0.8}, 0)
    assert c.fingerprint == "floor_offline|A|3" and c.severity == "critical" and "8 台" in c.subject
    assert rules.floor_offline(lost[:7] + up + [dev("pc-311")], {"ratio": 0.8}, 0) == []  # 7 of 10
    assert rules.floor_offline(lost[:2], {"min_devices": 3}, 0) == []
    assert rules.floor_offline(shut, {}, 0) == []  # an evening of clean shutdowns is no outage


def test_a_building_outage_inhibits_its_floors_and_devices() -> None:
    lost = [dev(f"pc-{f}0{i}", False, "lost", floor=str(f)) for f in (1, 2) for i in range(4)]
    [b] = rules.building_offline(lost, {"min_devices": 6, "ratio": 0.8}, 0)
    assert (b.fingerprint, b.kind, b.labels["floor"]) == ("building_offline|A", "building_offline", None)
    assert "整栋楼 8 台" in b.subject
    floors = rules.floor_offline(lost, {"min_devices": 3}, 0)
    assert len(floors) == 2
    inhibit = config.DEFAULT_CONFIG["inhibit"]
    src = [dict(b.labels, kind=b.kind, school="s1")]
    assert all(routing.inhibited(dict(f.labels, kind=f.kind, school="s1"), src, inhibit) for f in floors)
    assert rules.building_offline(lost[:5], {"min_devices": 6}, 0) == []


def test_offline_in_lesson_only_for_classes_in_a_lesson() -> None:
    devs = [dev("pc-301", False, "lost"), dev("pc-302", False, "shutdown"), dev("pc-303")]
    out = rules.offline_in_lesson(devs, {"301": (0, 2700), "302": (0, 2700), "303": (0, 2700)}, {})
    assert [(c.device, c.subject) for c in out] == [("pc-301", "上课时间离线（断电或断网）"),
                                                   ("pc-302", "上课时间离线（已关机）")]
    assert rules.offline_in_lesson(devs, {}, {}) == []


def test_left_on_after_the_last_lesson_and_at_night() -> None:
    devs = [dev("pc-301"), dev("pc-302"), dev("pc-303", online=False)]
    end = local_ts(2026, 11, 23, 16, 30)
    at = datetime(2026, 11, 23, 17, 5, tzinfo=TZ)
    out = rules.left_on(devs, {"301": end, "302": end + 3600}, at, {"after_min": 30})
    assert [c.device for c in out] == ["pc-301"] and "35 分钟" in out[0].subject
    night = rules.left_on(devs, {}, datetime(2026, 11, 23, 22, 30, tzinfo=TZ), {"night": "22:00"})
    assert [c.subject for c in night] == ["夜间未关机", "夜间未关机"]


def test_agent_silent_counts_only_teaching_days() -> None:
    sched = StaticSchedule({}, term=None)  # mainland working days
    friday_17 = local_ts(2026, 11, 20, 17, 0)
    monday_9 = local_ts(2026, 11, 23, 9, 0)
    tuesday_7 = local_ts(2026, 11, 24, 7, 0)
    pcs = [dev("pc-1", last_seen=friday_17)]
    assert rules.agent_silent(pcs, term_cutoff(sched, "s1", monday_9, 24, TZ), {}) == []  # the weekend
    [c] = rules.agent_silent(pcs, term_cutoff(sched, "s1", tuesday_7, 24, TZ), {"after_h": 24})
    assert c.kind == "agent_silent" and c.severity == "warning"
    holidays = StaticSchedule({}, term=False)
    assert term_cutoff(holidays, "s1", tuesday_7, 24, TZ) is None


def test_event_rules() -> None:
    d = dev("pc-301")
    sw = rules.software_alert(d, {"action": "blocked", "name": "Minecraft", "exe": "mc.exe", "rule": "mine*"}, 5,
                              True, {"severity_in_lesson": "warning"})
    assert (sw.severity, sw.subject, sw.mode) == ("warning", "上课时已拦截违规软件 Minecraft", "event")
    assert rules.software_alert(d, {"action": "detected", "name": "qq"}, 5, False, {}).severity == "info"
    dr = rules.drift_alert(d, {"field": "ip", "old": "10.0.0.5", "new": "10.0.0.99"}, 5, {})
    assert dr.subject == "IP 地址被改：10.0.0.5 → 10.0.0.99" and dr.fingerprint == "drift|pc-301|ip"
    prev = {"software": [{"name": "WPS"}]}
    cur = {"software": [{"name": "WPS"}, {"name": "迅雷"}]}
    assert [c.subject for c in rules.new_software(d, prev, cur, 5, {})] == ["新装软件 迅雷"]
    assert rules.new_software(d, None, cur, 5, {}) == []  # a first inventory is no news
    assert rules.unclean_shutdowns(d, [1.0, 2.0], 3.0, {"count": 3}) is None
    c = rules.unclean_shutdowns(d, [1.0, 2.0, 3.0], 3.0, {"count": 3, "days": 7})
    assert c is not None and "3 次非正常关机" in c.subject
    rows = [{"teacher": "张老师", "rate": 0.4, "used": 4, "scheduled": 10, "below_threshold": True},
            {"teacher": "李老师", "rate": 0.9, "below_threshold": False}]
    [u] = rules.usage_below("s1", "2026-W48", rows, "teacher", 5, {}, 0.6)
    assert u.fingerprint == "usage_below|2026-W48|teacher|张老师" and "40%" in u.subject


def test_routes_first_match_continue_and_min_severity() -> None:
    cfg = config.merged({"channels": {}, "routes": [
        {"match": {"kind": "fault", "min_severity": "warning"}, "channels": ["maint"], "continue": True},
        {"match": {"building": ["A", "B"]}, "channels": ["boss"], "group_wait_s": 5},
        {"match": {}, "channels": ["it"]}]})
    got = routing.routes_for({"kind": "fault", "severity": "critical", "building": "A"}, cfg)
    assert [r.channels for r in got] == [["maint"], ["boss"]] and got[1].group_wait_s == 5
    assert [r.channels for r in routing.routes_for({"kind": "fault", "severity": "info"}, cfg)] == [["it"]]


def test_quiet_hours_wrap_midnight() -> None:
    q = {"start": "22:00", "end": "07:00"}
    at = datetime(2026, 11, 23, 23, 10, tzinfo=TZ)
    assert routing.in_quiet(at, q) and routing.held_by_quiet("warning", at, q)
    assert not routing.held_by_quiet("critical", at, q)
    assert routing.quiet_end(at, q) == datetime(2026, 11, 24, 7, 0, tzinfo=TZ)
    assert not routing.in_quiet(datetime(2026, 11, 24, 7, 0, tzinfo=TZ), q)
    assert routing.in_quiet(datetime(2026, 11, 24, 6, 59, tzinfo=TZ), q)
    assert not routing.in_quiet(at, None)


def test_inhibition_and_silences() -> None:
    rule = [{"source_kind": "floor_offline", "equal": ["building", "floor"]}]
    src = [{"kind": "floor_offline", "school": "s1", "building": "A", "floor": "3"}]
    dev_alert = {"kind": "offline_in_lesson", "school": "s1", "building": "A", "floor": "3", "device": "pc-301"}
    assert routing.inhibited(dev_alert, src, rule)
    assert not routing.inhibited(dict(dev_alert, floor="4"), src, rule)
    assert not routing.inhibited(dict(src[0]), src, rule)  # never itself
    sil = [{"starts": 0, "ends": 100, "matchers": {"building": "A"}}, {"starts": 0, "ends": 50, "matchers": {}}]
    assert routing.silenced_until(dev_alert, sil, 10) == 100
    assert routing.silenced_until(dict(dev_alert, building="B"), sil, 10) == 50
    assert routing.silenced_until(dev_alert, sil, 100) is None


def test_messages_are_short_chinese_place_first() -> None:
    a = {"id": 1, "kind": "fault", "code": "display_missing", "subject": "投影无信号", "severity": "warning",
         "building": None, "floor": "3", "class": "302", "device": "pc-302", "state": "firing",
         "opened": local_ts(2026, 11, 23, 8, 5), "resolved_t": local_ts(2026, 11, 23, 8, 20)}
    assert messages.line(a, TZ) == "3楼 302班 投影无信号 (display_missing) 08:05"
    body = messages.compose([("firing", a)], TZ, 0, lambda ids: f"http://x/ack?ids={ids[0]}")
    assert body == "3楼 302班 投影无信号 (display_missing) 08:05\n收到请点：http://x/ack?ids=1"
    assert messages.compose([("resolved", a)], TZ, 0, lambda ids: None).endswith("已恢复 08:20")
    many = [("firing", dict(a, id=i, **{"class": f"3{i:02d}"})) for i in range(200)]
    body = messages.compose(many, TZ, 0, lambda ids: None)
    assert len(body.encode()) <= messages.MAX_BYTES and body.startswith("3楼 200 条：故障200")
    listed = body.count("(display_missing)")
    assert f"…另有 {200 - listed} 条" in body


def test_config_checks_name_the_problem_and_never_show_secrets() -> None:
    with pytest.raises(config.ConfigError, match="channel 'boss' is not defined"):
        config.validate({"channels": {"maint": {"url": "wecombot://k"}},
                         "routes": [{"channels": ["maint"], "escalate": [{"after_min": 5, "channels": ["boss"]}]}]})
    with pytest.raises(config.ConfigError, match="not a valid apprise URL") as e:
        config.validate({"channels": {"x": {"url": "nosuchservice://SECRETKEY123"}}})
    assert "SECRETKEY123" not in str(e.value)
    with pytest.raises(config.ConfigError, match="rules.left_on.severity"):
        config.validate({"rules": {"left_on": {"severity": "loud"}}})
    with pytest.raises(config.ConfigError, match="quiet_hours"):
        config.validate({"quiet_hours": {"start": "25:00", "end": "07:00"}})
    shown = config.redacted({"channels": {"m": {"url": "dingtalk://SEC123@TOKEN456/"}}})
    assert shown["channels"]["m"]["url"] == "dingtalk://***"
    assert config.rate_per_min({"url": "wecombot://k"}) == 20 and config.rate_per_min({"url": "json://h"}) is None
