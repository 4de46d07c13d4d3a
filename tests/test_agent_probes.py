"""Probes, fault tracking, outbox bounds and commands, with fakes only at the OS boundary."""
from __future__ import annotations

import ctypes
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol
from agent.commands import VERIFIERS, Commands, Refused, eod_due
from agent.config import load_config
from agent.context import Context
from agent.desktop import LogDesktop
from agent.faulttrack import FaultTracker
from agent.outbox import Outbox
from agent.probes import all_probes, faults, power, software, usage
from agent.probes.blockguard import BlockGuard, Owner, Seat, Sessions
from agent.probes.drift import DriftProbe
from agent.probes.faults import DrmDisplaySource, FaultProbe, report_outbox
from agent.probes.idle import IdleSource
from protocol.programs import glob_hit

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone(timedelta(hours=8)))


def make_ctx(tmp: Path, **cfg: Any) -> Context:
    c = load_config(None, dict({"school": "s1", "device": "pc-1", "data_dir": str(tmp)}, **cfg), environ={})
    return Context(c, Outbox(str(tmp / "outbox.db"), c.outbox_max_events, int(c.outbox_max_mb * 2 ** 20)))


def events(ctx: Context, etype: str | None = None) -> list[dict[str, Any]]:
    evs = [e for _, e in ctx.outbox.peek(100000, max_bytes=10 ** 9)]
    return [e for e in evs if etype is None or e["type"] == etype]


# -- fault tracking ---------------------------------------------------------------------------
def test_fault_raised_once_cleared_after_hold_and_remembered(tmp_path: Path) -> None:
    clock = [0.0]
    emitted: list[dict[str, Any]] = []
    store: dict[str, str] = {}

    def tracker() -> FaultTracker:
        return FaultTracker(lambda t, d, ts=None: emitted.append(d), lambda: store.get("f"),
                            lambda v: store.__setitem__("f", v), hold_s=300, clock=lambda: clock[0])

    t = tracker()
    for bad in (True, True, False, True, False):  # flapping around the threshold
        t.observe("disk_full", bad, "warning", "x")
        clock[0] += 60
    assert [e["state"] for e in emitted] == ["raised"]
    t2 = tracker()  # a restart: still open, not raised again
    t2.observe("disk_full", True)
    assert len(emitted) == 1
    t2.observe("disk_full", False)
    clock[0] += 299
    t2.observe("disk_full", False)
    assert len(emitted) == 1
    clock[0] += 1
    t2.observe("disk_full", False)
    assert [e["state"] for e in emitted] == ["raised", "cleared"] and not t2.is_open("disk_full")


# -- software ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,exe,deny,allow,rule", [
    ("Minecraft.exe", r"C:\Games\Minecraft.exe", software.DEFAULT_DENY, [], "minecraft*"),
    ("WeChat.exe", r"C:\Program Files\Tencent\WeChat\WeChat.exe", software.DEFAULT_DENY, [], "wechat*"),
    ("game.exe", r"D:\Steam\steamapps\common\x\game.exe", software.DEFAULT_DENY, [], "*\\steamapps\\*"),
    ("notepad.exe", r"C:\Windows\notepad.exe", software.DEFAULT_DENY, [], None),
    ("Foo.EXE", "/opt/x/Foo.EXE", ["foo*"], ["FOO.exe"], None),  # allow wins over deny
    ("vim", "/usr/bin/vim", [], ["powerpnt*"], "allow-list"),
    ("systemd-udevd", "/usr/lib/systemd/systemd-udevd", [], ["powerpnt*"], None),  # system program
    ("kworker/0:1", "", [], ["powerpnt*"], None),  # kernel thread
    ("x", "/home/t/Games/Tetris/tetris", ["/home/*/games/*"], [], "/home/*/games/*"),
])
def test_software_verdict(name: str, exe: str, deny: list[str], allow: list[str], rule: str | None) -> None:
    assert software.verdict(name, exe, deny, allow) == rule


def one_glob_at_a_time(name: str, exe: str, deny: list[str], allow: list[str]) -> str | None:
    """The policy's meaning, glob by glob (what the compiled rules must agree with)."""
    if any(glob_hit(g, name, exe) for g in allow):
        return None
    hit = next((g for g in deny if glob_hit(g, name, exe)), None)
    if hit is None and allow and not software.system_program(exe, name):
        return "allow-list"
    return hit


GLOB = st.text(alphabet="aAbQ*?/\\.[]!-", max_size=8)
NAME = st.text(alphabet="aAbq./\\-[]", max_size=6)


@settings(max_examples=300, deadline=None)
@given(name=NAME, exe=st.builds(lambda d, n: d + n, st.sampled_from(["", "/usr/bin/", "C:\\Games\\", "/opt/A/"]), NAME),
       deny=st.lists(GLOB, max_size=4), allow=st.lists(GLOB, max_size=3))
def test_compiled_rules_agree_with_each_glob_in_turn(name: str, exe: str, deny: list[str], allow: list[str]) -> None:
    assert software.Rules(deny, allow).verdict(name, exe) == one_glob_at_a_time(name, exe, deny, allow)


class FakeTable(software.ProcessTable):
    def __init__(self) -> None:
        self.procs: dict[int, tuple[float, str, str]] = {}
        self.terminated: list[int] = []
        self.fail = False

    def pids(self) -> list[int]:
        return list(self.procs)

    def describe(self, pid: int) -> tuple[float, str, str] | None:
        return self.procs.get(pid)

    def terminate(self, pid: int, created: float) -> None:
        if self.fail:
            raise ProcessLookupError(pid)
        self.terminated.append(pid)
        del self.procs[pid]


class SeatOf(Sessions):
    """Every fake process belongs to uid 1000, the person logged in."""

    def seat(self) -> Seat | None:
        return Seat(1000, None)

    def owner(self, pid: int) -> Owner | None:
        return Owner(1000, "", None)


def test_software_probe_one_event_per_start_and_block(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from common.signing import public_b64

    # an agent with a pinned key enforces "block" (without one it only reports: test_trust_pinning.py)
    ctx = make_ctx(tmp_path, command_key=public_b64(Ed25519PrivateKey.generate()))
    table = FakeTable()
    probe = software.SoftwareProbe(table, guard=BlockGuard(SeatOf()))
    table.procs = {10: (1000.0, "bash", "/usr/bin/bash"), 11: (1000.0, "qq", "/opt/qq/qq")}
    probe.setup(ctx)
    probe.run(ctx)
    probe.run(ctx)
    assert [e["data"]["name"] for e in events(ctx, "software")] == ["qq"]
    table.procs[11] = (2000.0, "QQ", "/opt/qq/qq")  # the pid reused by a new start, after it vanished once
    del table.procs[11]
    probe.run(ctx)
    table.procs[11] = (2000.0, "QQ", "/opt/qq/qq")
    probe.run(ctx)
    assert len(events(ctx, "software")) == 2
    # a restarted agent does not report the same running program again
    again = software.SoftwareProbe(table, guard=BlockGuard(SeatOf()))
    again.setup(ctx)
    assert len(events(ctx, "software")) == 2
    # the policy asks to block: new matches are terminated and reported as blocked
    ctx.set_policy({"software": {"deny": ["*game*"], "action": "block"}})
    table.procs[12] = (3000.0, "tetris-game", "/tmp/tetris-game")
    again.run(ctx)
    ev = events(ctx, "software")[-1]["data"]
    assert ev == {"action": "blocked", "name": "tetris-game", "exe": "/tmp/tetris-game", "rule": "*game*"}
    assert table.terminated == [12]
    table.fail = True
    table.procs[13] = (3001.0, "other-game", "/tmp/other-game")
    again.run(ctx)
    ev = events(ctx, "software")[-1]["data"]
    assert ev["action"] == "detected" and ev["block_error"] == "ProcessLookupError"


# -- usage ------------------------------------------------------------------------------------
class FakeIdle(IdleSource):
    def __init__(self) -> None:
        self.idle: float | None = 0.0
        self.fg: str | None = None

    def idle_seconds(self) -> float | None:
        return self.idle

    def foreground(self) -> str | None:
        return self.fg


def test_usage_sessions_from_idle_time_and_teaching_program(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    src = FakeIdle()
    probe = usage.UsageProbe(src)
    probe.setup(ctx)  # input just now: a session starts
    src.idle = 400.0  # > 5 minutes without input ...
    src.fg = "POWERPNT.EXE"  # ... but a presentation is in front
    probe.run(ctx)
    assert ctx.in_use is True
    src.fg = "explorer.exe"
    probe.run(ctx)
    ctx.set_policy({"idle_minutes": 10})  # the school's policy: 10 minutes
    src.idle = 500.0
    probe.run(ctx)
    sess = events(ctx, "session")
    assert [e["data"]["state"] for e in sess] == ["start", "end", "start"]
    assert sess[0]["data"]["session_id"] == sess[1]["data"]["session_id"]
    assert sess[1]["data"]["active_s"] >= 0 and sess[1]["data"]["end"] >= sess[1]["data"]["start"]
    assert usage.decide_in_use(None, 5, None) is False


# -- power ------------------------------------------------------------------------------------
class FakeClocks(power.Clocks):
    exact = True

    def __init__(self) -> None:
        self.a, self.e = 100.0, 100.0

    def awake(self) -> float:
        return self.a

    def elapsed(self) -> float:
        return self.e


def test_power_on_unclean_start_crash_loop_and_sleep(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, crash_starts=2, fault_hold_s=0)
    wall = [1_800_000_000.0]
    clocks = FakeClocks()
    p = power.PowerProbe(clocks, boot_time=lambda: 1_799_990_000.0, wall=lambda: wall[0])
    p.setup(ctx)
    assert events(ctx, "power")[0]["data"]["clean"] is True
    # "last seen alive" is a file's modification time, not a SQLite commit (an fsync) every minute
    assert (tmp_path / "alive").stat().st_mtime == 1_800_000_000
    assert ctx.get_state("last_alive") is None
    ctx.outbox.close()
    ctx = make_ctx(tmp_path, crash_starts=2, fault_hold_s=0)  # killed: "running" stayed set
    wall[0] += 30
    p = power.PowerProbe(clocks, boot_time=lambda: 1_799_990_000.0, wall=lambda: wall[0])
    p.setup(ctx)
    on = [e for e in events(ctx, "power") if e["data"]["state"] == "on"]
    assert [e["data"]["clean"] for e in on] == [True, False]
    fault = {e["data"]["code"]: e for e in events(ctx, "fault") if e["data"]["state"] == "raised"}
    assert set(fault) == {"unclean_shutdown"}
    assert datetime.fromisoformat(fault["unclean_shutdown"]["ts"]).timestamp() == 1_800_000_000  # last alive
    ctx.outbox.close()
    ctx = make_ctx(tmp_path, crash_starts=2, fault_hold_s=0)  # killed again: a crash loop
    p = power.PowerProbe(clocks, boot_time=lambda: 1_799_990_000.0, wall=lambda: wall[0])
    p.setup(ctx)
    fault = {e["data"]["code"]: e for e in events(ctx, "fault") if e["data"]["state"] == "raised"}
    assert set(fault) == {"unclean_shutdown", "agent_crash"}
    # 10 minutes of suspend: awake clock stands still, elapsed clock runs
    clocks.a += 15
    clocks.e += 615
    wall[0] += 615
    p.run(ctx)
    states = [e["data"]["state"] for e in events(ctx, "power")]
    assert states[-2:] == ["sleep", "wake"]
    assert events(ctx, "power")[-1]["data"]["slept_s"] == 600
    assert power.SleepDetector(False).feed(0, 0) == 0.0


def test_last_seen_alive_from_an_older_agents_outbox(tmp_path: Path) -> None:
    """Agents before the alive file kept "last_alive" in the outbox: an upgrade after a power cut
    still dates the unclean shutdown."""
    ctx = make_ctx(tmp_path)
    ctx.outbox.set_meta("running", "1")
    ctx.set_state("last_alive", 1_799_999_000.0)
    power.PowerProbe(FakeClocks(), boot_time=lambda: 1_799_990_000.0, wall=lambda: 1_800_000_000.0).setup(ctx)
    fault = [e for e in events(ctx, "fault") if e["data"]["code"] == "unclean_shutdown"]
    assert datetime.fromisoformat(fault[0]["ts"]).timestamp() == 1_799_999_000
    assert "last seen alive " + protocol.format_time(power._local(1_799_999_000.0)) in fault[0]["data"]["detail"]


def test_windows_clocks_through_kernel32_fake() -> None:
    class K32:
        def QueryUnbiasedInterruptTime(self, ref: Any) -> int:  # noqa: N802
            ref._obj.value = 123 * 10 ** 7
            return 1

        def GetTickCount64(self) -> int:  # noqa: N802
            return 456_000

    c = power.WindowsClocks(K32())
    assert c.awake() == 123.0 and c.elapsed() == 456.0


# -- faults -----------------------------------------------------------------------------------
def test_display_missing_raised_and_cleared(tmp_path: Path) -> None:
    drm = tmp_path / "drm"
    (drm / "card0-HDMI-A-1").mkdir(parents=True)
    status = drm / "card0-HDMI-A-1" / "status"
    status.write_text("disconnected\n")
    ctx = make_ctx(tmp_path, fault_hold_s=0, disk_full_pct=100, mem_full_pct=100)
    probe = FaultProbe(DrmDisplaySource(str(drm)), temperature=lambda: 95.0)
    probe.run(ctx)
    status.write_text("connected\n")
    probe.run(ctx)
    got = [(e["data"]["code"], e["data"]["state"]) for e in events(ctx, "fault")]
    assert got == [("display_missing", "raised"), ("overheat", "raised"), ("display_missing", "cleared")]
    assert DrmDisplaySource(str(tmp_path / "none")).count() is None  # no DRM: unknown, not missing
    assert faults.WindowsDisplaySource(type("U", (), {"GetSystemMetrics": lambda self, n: 2})()).count() == 2


def test_absent_hardware_is_looked_for_again_only_hourly(tmp_path: Path) -> None:
    """No sensors (a VM, Windows): the temperature is not read every minute for nothing; display
    connectors are listed hourly, their status read every time."""
    now = [0.0]
    calls: list[int] = []
    readings: list[float | None] = [None, 70.0, 70.0]

    def read() -> float | None:
        calls.append(1)
        return readings[len(calls) - 1]

    temp = faults.CpuTemperature(read, clock=lambda: now[0])
    assert temp() is None and temp() is None and len(calls) == 1
    now[0] += faults.RELOOK_S
    assert temp() == 70.0 and temp() == 70.0 and len(calls) == 3  # sensors found: read every time
    drm = tmp_path / "drm"
    src = DrmDisplaySource(str(drm), clock=lambda: now[0])
    assert src.count() is None
    (drm / "card0-HDMI-A-1").mkdir(parents=True)
    (drm / "card0-HDMI-A-1" / "status").write_text("connected\n")
    assert src.count() is None  # the connector list is an hour old
    now[0] += faults.RELOOK_S
    assert src.count() == 1
    (drm / "card0-HDMI-A-1" / "status").write_text("disconnected\n")
    assert src.count() == 0  # status: every time


def test_sntp_offset_against_a_local_server() -> None:
    import socket
    import struct
    import threading

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))

    def serve() -> None:
        _, addr = srv.recvfrom(48)
        t = 1_800_000_000.0 + 300 + faults.NTP_EPOCH  # the server is 300 s ahead of our fake clock
        sec, frac = int(t), int((t % 1) * 2 ** 32)
        srv.sendto(b"\x1c" + 31 * b"\0" + struct.pack("!IIII", sec, frac, sec, frac), addr)

    th = threading.Thread(target=serve)
    th.start()
    off = faults.sntp_offset(f"127.0.0.1:{srv.getsockname()[1]}", wall=lambda: 1_800_000_000.0)
    th.join()
    srv.close()
    assert abs(off - 300) < 0.01


# -- outbox bounds ----------------------------------------------------------------------------
def test_outbox_full_drops_heartbeats_first_never_power_fault_software(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, outbox_max_events=100, fault_hold_s=0)
    ctx.emit("power", {"state": "on", "clean": True})
    for i in range(60):
        ctx.emit("heartbeat", {"in_use": False})
        ctx.emit("software", {"action": "detected", "name": f"p{i}", "exe": "", "rule": "r"})
    kept = events(ctx)
    assert len(kept) <= 100
    assert sum(e["type"] == "software" for e in kept) == 60 and kept[0]["type"] == "power"
    ctx.outbox.close()  # the agent restarts before the fault check: the drop report waits in the outbox
    ctx = make_ctx(tmp_path, outbox_max_events=100, fault_hold_s=0)
    report_outbox(ctx)
    raised = events(ctx, "fault")[-1]["data"]
    assert raised["code"] == "outbox_overflow" and raised["state"] == "raised"
    assert raised["types"] == {"heartbeat": raised["dropped"]} and "dropped" in raised["detail"]
    ctx.outbox.remove([s for s, _ in ctx.outbox.peek(100000, max_bytes=10 ** 9)])  # delivered
    report_outbox(ctx)  # still open: recovery observed now, cleared after the hold (0)
    report_outbox(ctx)
    assert events(ctx, "fault")[-1]["data"]["state"] == "cleared"


# -- drift ------------------------------------------------------------------------------------
def test_drift_compares_with_the_last_run(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ident = {"hostname": "pc-1", "ip": "10.0.0.5", "mac": "aa:bb", "workgroup": "WORKGROUP"}
    DriftProbe(lambda: dict(ident)).setup(ctx)
    assert events(ctx, "drift") == []
    ident.update(ip="10.0.0.9", workgroup="SCHOOL")
    DriftProbe(lambda: dict(ident)).setup(ctx)
    got = {e["data"]["field"]: (e["data"]["old"], e["data"]["new"]) for e in events(ctx, "drift")}
    assert got == {"ip": ("10.0.0.5", "10.0.0.9"), "workgroup": ("WORKGROUP", "SCHOOL")}


# -- commands ---------------------------------------------------------------------------------
def cmd(cid: str, kind: str, args: dict[str, Any] | None = None, expires: datetime | None = None) -> bytes:
    issued = NOW if expires is None else expires - timedelta(hours=2)
    return json.dumps({"id": cid, "kind": kind, "args": args or {}, "issued": issued.isoformat(),
                       "expires": (expires or NOW + timedelta(hours=1)).isoformat()}).encode()


def test_commands_accepted_once_acked_and_shutdown_cancellable(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    desk = LogDesktop()
    acks: list[dict[str, Any]] = []
    inv: list[int] = []
    c = Commands(ctx, desk, acks.append, lambda: inv.append(1), clock=lambda: NOW)
    assert c.handle(cmd("m1", "message", {"text": "请关投影"})) == {"id": "m1", "ok": True}
    assert desk.notices == ["请关投影"]
    c.handle(cmd("m1", "message", {"text": "请关投影"}))  # redelivered: acked again, not shown again
    assert acks[-1] == {"id": "m1", "ok": True} and desk.notices == ["请关投影"]
    c.handle(cmd("s1", "shutdown", {"delay_s": 600, "text": "下课关机"}))
    assert c.pending is not None and desk.notices[-1] == "下课关机"
    c.handle(cmd("x1", "cancel_shutdown"))
    assert c.pending is None and desk.powered_off == 0
    c.handle(cmd("r1", "refresh_inventory"))
    assert inv == [1]
    assert c.handle(cmd("old", "message", {"text": "x"}, expires=NOW - timedelta(seconds=1))) == \
        {"id": "old", "ok": False, "error": "expired"}
    bad = c.handle(b'{"id": "b1", "kind": "format_disk"}')
    assert bad is not None and bad["ok"] is False and "format_disk" in bad["error"]
    assert c.handle(b"not json") is None
    # the trust area's hook: a verifier refuses, the command is not run
    c.verifiers.append(lambda command, payload: (_ for _ in ()).throw(Refused("bad signature")))
    assert c.handle(cmd("v1", "message", {"text": "hi"})) == {"id": "v1", "ok": False, "error": "bad signature"}
    c.verifiers.clear()
    assert VERIFIERS == []
    # shutdown with no delay powers off through the desktop boundary
    c.handle(cmd("s2", "shutdown", {"delay_s": 0}))
    assert c.pending is not None
    c.pending.timer.join(5)
    assert desk.powered_off == 1


def test_end_of_day_shutdown_rule() -> None:
    at = datetime(2026, 11, 23, 17, 45)
    assert eod_due(at, "17:30", False, None) is True
    assert eod_due(at, "17:30", True, None) is False  # in use: never
    assert eod_due(at, "18:00", False, None) is False
    assert eod_due(at, "17:30", False, "2026-11-23") is False  # done today
    assert eod_due(at, None, False, None) is False


def test_every_probe_is_registered_and_declares_fields() -> None:
    probes = all_probes()
    assert {p.name for p in probes} == {"power", "usage", "heartbeat", "software", "faults", "drift", "usb",
                                        "inventory", "protection", "projector"}
    for p in probes:
        assert p.emits and p.fields and (p.period is None or hasattr(load_config(
            None, {"school": "s"}, environ={}), p.period)), p.name


def test_a_failing_probe_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from agent.probes import run_probe

    def broken() -> None:
        raise OSError("sensor gone")

    assert run_probe("temperature", broken, "fallback") == "fallback"
    assert "probe temperature failed" in caplog.text
    _ = ctypes, os  # imported for the fakes' types


def test_data_sheet_lists_every_field_the_probes_declare() -> None:
    import re

    from tests.helpers import ROOT

    sheet = Path(ROOT, "docs", "agent-data-sheet.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", sheet))
    missing = [(p.name, f.split()[0]) for p in all_probes() for f in p.fields if f.split()[0] not in documented]
    assert not missing, f"fields missing from docs/agent-data-sheet.md: {missing}"
    for never in ("keystrokes", "window titles", "browsing history", "screen contents"):
        assert never in sheet


def test_proc_table_reads_what_psutil_reads() -> None:
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    fast, slow = software.ProcTable(), software.ProcessTable()
    me = fast.describe(os.getpid())
    ref = slow.describe(os.getpid())
    assert me is not None and ref is not None
    assert abs(me[0] - ref[0]) < 0.05 and me[1] == ref[1] and me[2] == ref[2]
    assert os.getpid() in fast.pids() and fast.describe(2 ** 22 + 7) is None


def test_end_of_day_shutdown_warns_then_powers_off_only_when_idle(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.runner import Agent
    from common.signing import public_b64, sign

    key = Ed25519PrivateKey.generate()  # only a signed policy may switch PCs off (docs/security.md)
    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path), "shutdown_warn_s": 0.3,
                             "command_key": public_b64(key)}, environ={})
    desk = LogDesktop()
    a = Agent(cfg, probes=[], desktop=desk)
    a.ctx.set_policy(sign({"shutdown_after": "00:00"}, key))  # always past: due whenever the PC is idle
    a.ctx.in_use = True
    a._end_of_day()
    assert desk.notices == [] and a.commands.pending is None  # in use: nothing happens
    a.ctx.in_use = False
    a._end_of_day()
    assert desk.notices and "关机" in desk.notices[0]  # the warning first
    a.ctx.in_use = True  # someone comes back during the warning
    assert a.commands.pending is not None
    a.commands.pending.timer.join(5)
    assert desk.powered_off == 0 and a.ctx.get_state("eod_done") is None
    a.ctx.in_use = False
    a._end_of_day()
    assert a.commands.pending is not None
    a.commands.pending.timer.join(5)
    assert desk.powered_off == 1 and a.ctx.get_state("eod_done") == datetime.now().date().isoformat()
    a._end_of_day()  # done for today
    assert len(desk.notices) == 2
    a.outbox.close()
