"""Wake-on-LAN planning and schedule, the network from the inventory, the wake/storm command rules
(pure parts and the store; the end-to-end path is tests/test_power_commands.py)."""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import protocol
from agent.commands import Commands
from agent.desktop import LogDesktop
from agent.wol import magic_packet, send_magic
from collector.db import connect
from collector.devices.commands import CommandError
from collector.devices.registry import ensure_school
from collector.migrations import migrate
from collector.operations import power, wake
from collector.school.imports import run_import
from tests.dash import online, publish, seed_school

TZ = ZoneInfo("Asia/Shanghai")


def dev(name: str, up: bool, ip: str | None, mac: str | None, mask: str = "255.255.255.0") -> dict[str, Any]:
    return {"device": name, "online": up, "net_ip": ip, "net_mask": mask if ip else None, "net_mac": mac}


def test_plan_uses_an_online_peer_of_the_same_subnet_and_says_why_not() -> None:
    devices = [dev("a-peer", True, "10.1.1.5", "aa:00:00:00:00:01"), dev("b-peer", True, "10.1.1.6", None),
               dev("t1", False, "10.1.1.50", "aa:00:00:00:00:51"), dev("t2", False, "10.1.1.51", "aa:00:00:00:00:52"),
               dev("t3", False, "10.2.0.9", "aa:00:00:00:00:53"), dev("t4", False, None, None),
               dev("t5", False, "10.1.1.52", None), dev("x", False, "10.1.1.53", "aa:00:00:00:00:54")]
    sends, skipped = wake.plan(devices, {"t1", "t2", "t3", "t4", "t5", "a-peer"})
    assert sends == {"a-peer": {"macs": ["aa:00:00:00:00:51", "aa:00:00:00:00:52"], "broadcast": "10.1.1.255",
                                "targets": ["t1", "t2"]}}  # one peer per subnet, one command for both
    assert skipped == {"t3": "no_peer", "t4": "no_address", "t5": "no_address", "a-peer": "already_on"}
    # a /23 subnet's broadcast; a malformed mask is "no address"
    sends, skipped = wake.plan([dev("p", True, "192.168.2.1", None, "255.255.254.0"),
                                dev("t", False, "192.168.3.77", "aa:00:00:00:00:01", "255.255.254.0"),
                                dev("u", False, "192.168.3.78", "aa:00:00:00:00:02", "255.0.255.0")], {"t", "u"})
    assert sends["p"]["broadcast"] == "192.168.3.255" and skipped == {"u": "no_address"}


def test_magic_packet_and_sending() -> None:
    assert magic_packet("01:23:45:67:89:AB") == b"\xff" * 6 + bytes.fromhex("0123456789ab") * 16
    with pytest.raises(ValueError):
        magic_packet("01:23:45")

    class Sock:
        sent: list[tuple[bytes, tuple[str, int]]] = []

        def __enter__(self) -> Sock:
            return self

        def __exit__(self, *a: Any) -> None:
            pass

        def setsockopt(self, *a: Any) -> None:
            pass

        def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
            self.sent.append((data, addr))
    with pytest.raises(ValueError):  # all or nothing
        send_magic(["aa:bb:cc:dd:ee:ff", "zz"], "10.0.0.255", make_socket=Sock)
    assert Sock.sent == []
    assert send_magic(["aa:bb:cc:dd:ee:ff"], "10.0.0.255", 7, make_socket=Sock) == 1
    assert Sock.sent[0][1] == ("10.0.0.255", 7)


def test_wake_and_storm_command_rules() -> None:
    ok = {"macs": ["aa:bb:cc:dd:ee:ff"], "broadcast": "10.0.0.255", "port": 9}
    assert protocol.validate_command_args("wake", ok) == ok
    for bad, needle in (({}, "macs"), ({"macs": [], "broadcast": "1.2.3.4"}, "macs"),
                        ({"macs": ["AA:BB:CC:DD:EE:FF"], "broadcast": "1.2.3.4"}, "AA:BB"),
                        ({"macs": ["aa:bb:cc:dd:ee:ff"], "broadcast": "10.0.0"}, "broadcast"),
                        ({**ok, "port": 70000}, "65535"), ({**ok, "port": 0}, "port")):
        with pytest.raises(protocol.Rejected, match=needle):
            protocol.validate_command_args("wake", bad)
    with pytest.raises(protocol.Rejected, match="in_use_delay_s"):
        protocol.validate_command_args("shutdown", {"in_use_delay_s": -1})


def test_agent_gives_a_pc_in_use_the_longer_countdown(tmp_path: Path) -> None:
    from tests.test_agent_probes import make_ctx

    now = datetime.now(TZ)
    cmd = protocol.make_command("c-1", "shutdown", power.storm_args(), now, now + timedelta(minutes=10))
    for in_use, delay in ((False, power.STORM_IDLE_DELAY_S), (True, power.STORM_IN_USE_DELAY_S)):
        ctx = make_ctx(tmp_path / str(in_use))
        ctx.in_use = in_use
        desk = LogDesktop()
        c = Commands(ctx, desk, lambda a: None, lambda: None, clock=lambda: now)
        assert c.handle(json.dumps(cmd).encode()) == {"id": "c-1", "ok": True}
        assert c.pending is not None and c.pending.timer.interval == delay
        assert desk.notices[0].startswith(power.STORM_TEXT)
        assert ("10 分钟后关机" if in_use else "60 秒后关机") in desk.notices[0]
        assert [r.interval for r in c.pending.reminders] == ([delay - 60] if in_use else [])
        c.cancel_shutdown()
        assert desk.powered_off == 0


def test_inventory_network_is_stored_and_follows_drift(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "bbt.db"))
    migrate(db)
    seed_school(db)
    t = datetime.now(TZ) - timedelta(minutes=5)
    publish(db, "pc-101", [("inventory", t, {"hostname": "h", "os": "w", "cpu": "c", "ram_mb": 1, "disks": [],
                                             "displays": 1, "software": [], "ip": "10.3.0.7",
                                             "netmask": "255.255.0.0", "mac": "AA:BB:CC:00:11:22"}),
                           ("drift", t + timedelta(minutes=1), {"field": "ip", "old": "10.3.0.7", "new": "10.3.0.8"})],
            status=online("pc-101", t))
    row = db.query("SELECT net_ip, net_mask, net_mac FROM devices WHERE device = 'pc-101'")[0]
    assert row == {"net_ip": "10.3.0.8", "net_mask": "255.255.0.0", "net_mac": "aa:bb:cc:00:11:22"}
    db.close()


def test_schedule_wakes_before_first_period_on_school_days_only(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "bbt.db"))
    migrate(db)
    seed_school(db)
    bell = tmp_path / "bell.csv"
    bell.write_text("period,start,end\n1,08:00,08:45\n2,08:55,09:40\n", encoding="utf-8")
    run_import(db, "bell", "s1", bell)
    school_day, holiday = date(2026, 11, 23), date(2026, 10, 1)  # a Monday; 国庆节
    first = wake.first_period_start(db, "s1", school_day)
    assert first == datetime(2026, 11, 23, 8, 0, tzinfo=TZ)
    assert wake.first_period_start(db, "s1", holiday) is None
    assert wake.first_period_start(db, "s1", date(2026, 11, 22)) is None  # a Sunday
    at = datetime(2026, 11, 23, 7, 45, tzinfo=TZ)
    assert wake.wake_due(at, first, 20, None) and not wake.wake_due(at, first, 10, None)
    assert not wake.wake_due(at, first, 20, "2026-11-23")  # once a day
    assert not wake.wake_due(at.replace(hour=8, minute=1), first, 20, None)

    # the maintenance run: off by default, then once on the school day, never on the holiday
    db.execute("UPDATE devices SET net_ip = '10.0.0.' || substr(device, 4), net_mask = '255.255.255.0', "
               "net_mac = 'aa:00:00:00:0' || substr(device, 4, 1) || ':' || substr(device, 5)")
    publish(db, "pc-101", [], status=online("pc-101", datetime.now(TZ)))  # a peer
    sent: list[tuple[str, bytes, bool]] = []

    def send(topic: str, payload: bytes, retain: bool) -> None:
        sent.append((topic, payload, retain))
    with pytest.raises(CommandError, match="0-180"):
        wake.set_schedule(db, "s1", True, 500, "root")
    assert wake.run_schedules(db, send, at.timestamp()) == []
    wake.set_schedule(db, "s1", True, 20, "root")
    assert wake.run_schedules(db, send, datetime(2026, 10, 1, 7, 45, tzinfo=TZ).timestamp()) == []
    ids = wake.run_schedules(db, send, at.timestamp())
    assert len(ids) == 1 and wake.run_schedules(db, send, at.timestamp() + 60) == []
    assert [t for t, _, _ in sent] == [protocol.cmd_topic("s1", "pc-101")]
    args = json.loads(sent[0][1])["args"]
    assert args["broadcast"] == "10.0.0.255" and sorted(args["macs"]) == ["aa:00:00:00:01:02", "aa:00:00:00:02:01"]
    assert wake.get_schedule(db, "s1")["last_day"] == "2026-11-23"
    db.close()


def test_group_scope_rules_and_wake_on_both_backends(db: Any) -> None:
    seed_school(db)
    ensure_school(db, "s1")
    with pytest.raises(CommandError, match="building"):
        power.scope_devices(db, "s1", None, "1楼")
    with pytest.raises(CommandError, match="no known device"):
        power.create_group(db, "s1", "shutdown", {}, "root", "C楼")
    with pytest.raises(CommandError, match="group command"):
        power.create_group(db, "s1", "refresh_inventory", {}, "root")
    assert power.buildings(db, "s1") == {"A楼": ["1楼", "2楼"]}
    n = len(db.query("SELECT id FROM commands"))
    action_id, created = power.create_group(db, "s1", "shutdown", {}, "root", now=time.time())
    assert created == [] and power.results(db, action_id)["tally"] == {"offline": 3}  # type: ignore[index]
    assert len(db.query("SELECT id FROM commands")) == n  # nothing queued for PCs that are off
    for d, ip in (("pc-101", "10.5.0.1"), ("pc-102", "10.5.0.2"), ("pc-201", "10.6.0.1")):
        db.execute("UPDATE devices SET net_ip = ?, net_mask = '255.255.255.0', net_mac = ? WHERE device = ?",
                   (ip, "aa:00:00:00:00:0" + ip[-1], d))
    publish(db, "pc-101", [], status=online("pc-101", datetime.now(TZ)))
    wake_id, created = wake.create_wake(db, "s1", "root", "A楼")
    assert [(c["device"], c["command"]["args"]) for c in created] == [
        ("pc-101", {"macs": ["aa:00:00:00:00:02"], "broadcast": "10.5.0.255", "port": 9})]
    res = power.results(db, wake_id)
    assert res is not None and {t["device"]: t["result"] for t in res["targets"]} == {
        "pc-101": "already_on", "pc-102": "waiting", "pc-201": "no_peer"}
    assert [a["id"] for a in power.recent(db, "s1")] == [wake_id, action_id]
    wake.set_schedule(db, "s1", True, 15, "root")
    wake.set_schedule(db, "s1", False, 25, "root")
    assert wake.get_schedule(db, "s1") == {"enabled": False, "minutes_before": 25, "last_day": None}


def test_an_agent_without_a_pinned_key_sends_no_wake_packets() -> None:
    from agent.commands import Refused
    from agent.trust import refuse_power

    for kind in ("shutdown", "wake"):
        with pytest.raises(Refused, match="no pinned command key"):
            refuse_power({"kind": kind}, b"")
    refuse_power({"kind": "message"}, b"")
