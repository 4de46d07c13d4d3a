"""The agent's shared tick, the kernel's process events for the program scan, the end-of-day trigger."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from agent.commands import eod_trigger
from agent.loop import Loop
from agent.probes import execwatch, software
from agent.ticker import OsEvents, Ticker
from tests.helpers import wait_for
from tests.test_agent_probes import FakeTable, events, make_ctx

# -- ticker --------------------------------------------------------------------------------------
DEFAULTS: list[tuple[str, float]] = [("power", 30), ("usage", 30), ("heartbeat", 60), ("software", 12),
                                     ("faults", 60), ("usb", 30)]


def simulate(jobs: list[tuple[str, float]], until: float, polls: bool = True,
             late: float = 0.0) -> tuple[int, dict[str, list[float]]]:
    """Run a ticker on a fake clock as the loop does (sleep to next_due, run_due); the wake-ups and when
    each job ran. ``polls`` False: the program scan waits for process events (none come). ``late``: each
    wake-up comes that long after it was asked for (a real select() returns a little late)."""
    now = [0.0]
    t = Ticker(clock=lambda: now[0])
    ran: dict[str, list[float]] = {}
    def recorder(name: str) -> Callable[[], None]:
        return lambda: ran.setdefault(name, []).append(now[0])

    for name, period in jobs:
        t.add(name, recorder(name), period, wakes=polls or name != "software")
    wakes = 0
    while (due := t.next_due()) is not None and due <= until:
        now[0] = due + late
        wakes += 1
        t.run_due()
    return wakes, ran


def gaps(times: list[float]) -> set[float]:
    return {round(b - a, 6) for a, b in zip(times, times[1:], strict=False)}


def test_jobs_share_wake_ups_two_a_minute_on_a_quiet_pc_five_while_the_scan_polls() -> None:
    wakes, ran = simulate(DEFAULTS, 600, polls=False)
    assert wakes == 20  # two a minute: every probe runs on them
    assert gaps(ran["usage"]) == {30.0} and gaps(ran["heartbeat"]) == {60.0}
    assert len(ran["software"]) == 20  # rides along (a socket read) on every wake-up
    wakes, ran = simulate(DEFAULTS, 600, polls=True)
    assert wakes == 50  # the 12 s scan sets the pace ...
    assert gaps(ran["software"]) == {12.0}
    assert gaps(ran["usage"]) == {24.0}  # ... the in-use check rides on every second one (15-30 s)
    assert gaps(ran["heartbeat"]) == {60.0}  # not pulled early: a scan wake-up comes at its deadline
    assert set(ran["usb"]) <= set(ran["software"]) and set(ran["heartbeat"]) <= set(ran["software"])


def test_wake_ups_that_come_late_do_not_pull_the_heartbeat_early() -> None:
    """A select() returns a few ms late, so the 12 s scan drifts past the heartbeat's deadline: the
    heartbeat must wait those ms for it (one a minute), not run a whole scan period early."""
    for late in (0.002, 0.015):
        wakes, ran = simulate(DEFAULTS, 601, polls=True, late=late)
        assert len(ran["heartbeat"]) == 10 and len(ran["faults"]) == 10
        assert all(60.0 <= g <= 61.0 for g in gaps(ran["heartbeat"]))
        assert all(11.9 <= g <= 12.1 for g in gaps(ran["software"]))  # (early by ms at a heartbeat)
        assert all(g <= 30.1 for g in gaps(ran["usage"]))
        assert wakes <= 50
        wakes, ran = simulate(DEFAULTS, 601, polls=False, late=late)
        assert wakes == 20 and len(ran["heartbeat"]) == 10 and all(g <= 30.1 for g in gaps(ran["usage"]))


def test_a_stall_is_not_made_up_for_and_the_policy_changes_a_period() -> None:
    now = [0.0]
    t = Ticker(clock=lambda: now[0])
    for name, period in (("scan", 10), ("heartbeat", 60)):
        t.add(name, lambda: None, period)
    now[0] = 500.0  # the PC was busy (or the clock jumped): each job runs once, then on its period
    assert t.run_due() == ["scan", "heartbeat"]
    assert t.next_due() == 510.0
    now[0] = 510.0
    assert t.run_due() == ["scan"]
    t.set_period("heartbeat", 20)  # the policy's heartbeat_s: due within the new period
    assert t.period("heartbeat") == 20.0 and t.next_due() == 520.0
    now[0] = 520.0
    assert t.run_due() == ["scan", "heartbeat"]
    with pytest.raises(ValueError, match="period_s"):
        t.add("bad", lambda: None, 0)


def test_the_loop_runs_jobs_in_its_thread_survives_a_failing_one_and_runs_soon() -> None:
    loop = Loop()
    t = Ticker(loop.clock, on_soon=loop.wake)
    loop.sources.append(t)
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def job(name: str) -> None:
        seen.append((name, threading.current_thread().name))
        if sum(1 for n, _ in seen if n == "fast") >= 6:
            done.set()

    def broken() -> None:
        raise RuntimeError("probe bug")

    t.add("broken", broken, 0.05)
    t.add("fast", lambda: job("fast"), 0.05)
    t.add("slow", lambda: job("slow"), 3600)
    loop.start()
    try:
        assert done.wait(5), "the loop stopped after a failing job"
        t.run_soon("slow")  # from this thread: the loop wakes and runs it
        deadline = time.monotonic() + 5
        while ("slow", "bbt-agent-loop") not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        loop.call_soon(loop.stop)
        assert loop.join(5)
        loop.close()
    assert ("slow", "bbt-agent-loop") in seen
    assert {th for _, th in seen} == {"bbt-agent-loop"}


def test_a_job_the_os_wakes_runs_at_once_polls_while_busy_and_then_waits_again() -> None:
    """OsEvents with a socket pair standing in for the kernel's process events."""
    loop = Loop()
    t = Ticker(loop.clock, on_soon=loop.wake)
    os_side, agent_side = socket.socketpair()
    runs: list[float] = []
    found: list[bool] = []

    def scan() -> None:  # drains what the "kernel" said, like the program scan
        agent_side.setblocking(False)
        try:
            found.append(bool(agent_side.recv(100)))
        except BlockingIOError:
            found.append(False)
        runs.append(time.monotonic())
        watch.after_run()

    watch = OsEvents(t, "scan", lambda: agent_side, lambda: found[-1])
    t.add("scan", scan, 0.3, wakes=False)
    loop.sources += [t, watch]
    loop.start()
    try:
        time.sleep(0.8)
        assert runs == []  # quiet: the job does not wake the loop on its own
        t0 = time.monotonic()
        os_side.send(b"exec")
        wait_for(lambda: len(runs) >= 1, 2, what="run on the event")
        assert runs[0] - t0 < 0.2 and found == [True]  # at once
        assert t.wakes("scan")  # busy: polls on its period now
        wait_for(lambda: len(runs) >= 2, 2, what="the poll after the event")
        assert found[1] is False and 0.2 < runs[1] - runs[0] < 0.6
        assert not t.wakes("scan")  # found nothing: waits on the socket again
        time.sleep(0.8)
        assert len(runs) == 2
    finally:
        loop.call_soon(loop.stop)
        loop.join(5)
        loop.close()
        os_side.close()
        agent_side.close()


# -- process events ------------------------------------------------------------------------------
def exec_event(pid: int, tgid: int, what: int = execwatch.PROC_EVENT_EXEC) -> bytes:
    body = struct.pack("=IIIIHH", 1, 1, 0, 0, 24, 0) + struct.pack("=IIQII", what, 0, 0, pid, tgid)
    return struct.pack("=IHHII", 16 + len(body), 3, 0, 0, 0) + body


def test_parse_exec_reads_process_ids_of_exec_events_only() -> None:
    assert execwatch.parse_exec(exec_event(40, 40) + exec_event(41, 39)) == [40, 39]
    assert execwatch.parse_exec(exec_event(7, 7, what=0x1)) == []  # a fork
    assert execwatch.parse_exec(b"\x00" * 10) == []


class EventTable(FakeTable):
    def __init__(self) -> None:
        super().__init__()
        self.news: list[int] | None = []
        self.listed = 0

    def pids(self) -> list[int]:
        self.listed += 1
        return super().pids()

    def started(self) -> list[int] | None:
        news, self.news = self.news, []
        return news


def test_with_process_events_a_scan_looks_only_at_new_programs(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    table = EventTable()
    now = time.time()
    table.procs = {10: (now - 100, "bash", "/usr/bin/bash"), 11: (now - 100, "steam", "/opt/steam/steam")}
    clock = [0.0]
    probe = software.SoftwareProbe(table, clock=lambda: clock[0])
    probe.setup(ctx)  # the first scan lists everything
    assert table.listed == 1 and len(events(ctx, "software")) == 1
    assert not probe.busy
    for _ in range(5):
        probe.run(ctx)  # nothing started: /proc is not listed
    assert table.listed == 1
    table.procs[12] = (now - 50, "QQ.exe", "C:/Program Files/Tencent/QQ.exe")
    table.news = [12]
    probe.run(ctx)
    assert table.listed == 1 and [e["data"]["name"] for e in events(ctx, "software")] == ["steam", "QQ.exe"]
    assert probe.busy  # programs are starting: the agent's loop polls the events while that lasts
    table.news = None  # events were lost: look at everything
    table.procs[13] = (now - 10, "wechat", "/opt/wechat/wechat")
    probe.run(ctx)
    assert table.listed == 2 and len(events(ctx, "software")) == 3
    clock[0] += software.FULL_SCAN_S
    probe.run(ctx)
    assert table.listed == 3  # the periodic full scan, a safety net
    assert len(events(ctx, "software")) == 3  # and nothing reported twice
    # a process caught between fork and exec (its parent's name): looked at again, /proc not listed
    table.procs[14] = (time.time(), "bash", "/usr/bin/bash")
    table.news = [14]
    probe.run(ctx)
    table.procs[14] = (time.time() - software.YOUNG_S, "steam", "/opt/steam/steam")
    probe.run(ctx)
    assert table.listed == 3 and [e["data"]["name"] for e in events(ctx, "software")][3:] == ["steam"]
    probe.run(ctx)
    assert table.listed == 3 and len(events(ctx, "software")) == 4  # judged once old enough: not again


def test_kernel_process_events_report_a_new_program_without_listing_proc(tmp_path: Path) -> None:
    watcher = execwatch.open_watcher()
    if watcher is None:
        pytest.skip("no process events here (needs root and the host's network namespace)")
    watcher.close()
    table = software.ProcTable(watch=True)
    assert table.watcher is not None
    listed: list[int] = []
    real_pids = table.pids

    def spy() -> list[int]:
        listed.append(1)
        return real_pids()

    table.pids = spy  # type: ignore[method-assign]
    ctx = make_ctx(tmp_path)
    ctx.set_policy({"software": {"deny": ["bbtgame*"]}})
    probe = software.SoftwareProbe(table)
    probe.setup(ctx)
    probe.run(ctx)
    listed.clear()
    game = tmp_path / "bbtgame-test"
    shutil.copy("/bin/sleep", game)
    proc = subprocess.Popen([str(game), "30"])
    try:
        time.sleep(software.YOUNG_S + 0.2)  # old enough to be judged at once
        probe.run(ctx)
        got = [e["data"] for e in events(ctx, "software")]
        assert [d["name"] for d in got] == ["bbtgame-test"] and got[0]["exe"] == str(game)
        assert not listed, "the scan listed /proc although the kernel told which process started"
    finally:
        proc.kill()
        proc.wait()
        if table.watcher is not None:
            table.watcher.close()


# -- end of day --------------------------------------------------------------------------------
def test_end_of_day_trigger_fires_each_minute_from_the_policy_time_to_midnight() -> None:
    assert eod_trigger(None) is None
    trig = eod_trigger("17:30")
    tz = datetime.now().astimezone().tzinfo
    day = datetime(2026, 11, 23, 8, 0, tzinfo=tz)

    def next_after(h: int, m: int, s: int = 0) -> tuple[int, int, int]:
        at = day.replace(hour=h, minute=m, second=s)
        t = trig.get_next_fire_time(None, at)
        return (t.day, t.hour, t.minute)

    assert next_after(8, 0) == (23, 17, 30)  # nothing during the school day
    assert next_after(17, 45, 1) == (23, 17, 46)
    assert next_after(19, 0, 1) == (23, 19, 1)
    assert next_after(23, 59, 1) == (24, 17, 30)
    late = eod_trigger("23:50")
    t = late.get_next_fire_time(None, day)
    assert (t.hour, t.minute) == (23, 50)


def test_the_end_of_day_job_follows_the_policy_and_apscheduler_loads_only_for_it(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.runner import Agent
    from common.signing import public_b64, sign

    key = Ed25519PrivateKey.generate()  # an end-of-day shutdown needs a policy signed by the pinned key
    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path),
                             "command_key": public_b64(key)}, environ={})
    a = Agent(cfg, probes=[], desktop=LogDesktop())
    a._start_scheduler()
    try:
        assert a.ticker.has("heartbeat") is False  # (no probes here)
        assert a.scheduler is None  # the default policy has no end-of-day shutdown
        a.ctx.set_policy(sign({"shutdown_after": "17:30"}, key))
        assert a.scheduler is not None
        job = a.scheduler.get_job("end-of-day")
        assert job is not None and "hour='17', minute='30-59'" in str(job.trigger)
        a.ctx.set_policy(sign({"shutdown_after": "18:05"}, key))
        job = a.scheduler.get_job("end-of-day")
        assert job is not None and "hour='18', minute='5-59'" in str(job.trigger)
        a.ctx.set_policy(sign({}, key))  # removed from the policy: no job
        assert a.scheduler.get_job("end-of-day") is None
    finally:
        if a.scheduler is not None:
            a.scheduler.shutdown(wait=True)
        a.outbox.close()


def test_a_policy_arriving_while_the_agent_stops_starts_no_scheduler(tmp_path: Path) -> None:
    """The retained policy can arrive while stop() runs: no end-of-day job may outlive the agent
    (it would run on a closed outbox)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.runner import Agent
    from common.signing import public_b64

    # with a pinned key (an unpinned agent never schedules a shutdown: that would pass for any reason)
    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path),
                             "command_key": public_b64(Ed25519PrivateKey.generate())}, environ={})
    a = Agent(cfg, probes=[], desktop=LogDesktop())
    a._start_scheduler()
    a.stop()
    a.ctx._apply_policy({"shutdown_after": "17:30"})  # the policy arrives (its listener, too late)
    a._reschedule()
    assert a.scheduler is None


def test_block_changed_reads_every_device_event_and_spots_block_devices() -> None:
    from agent.probes import usb

    kernel, agent_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    agent_side.setblocking(False)
    try:
        kernel.send(b"change@/devices/platform/battery\0ACTION=change\0SUBSYSTEM=power_supply\0")
        assert usb.block_changed(agent_side) is False
        kernel.send(b"add@/devices/pci0000:00/usb1/1-1\0ACTION=add\0SUBSYSTEM=usb\0")
        kernel.send(b"add@/devices/pci0000:00/usb1/1-1/block/sdb\0ACTION=add\0SUBSYSTEM=block\0DEVNAME=sdb\0")
        assert usb.block_changed(agent_side) is True
        assert usb.block_changed(agent_side) is False  # all read
    finally:
        kernel.close()
        agent_side.close()
    assert usb.open_uevents(uid_map=__file__) is None  # not the initial user namespace (a container)


def test_a_block_device_event_from_the_kernel_wakes_the_usb_check(tmp_path: Path) -> None:
    """The real kernel: a 'change' event on a block device (what plugging a USB stick sends) runs the
    USB check SETTLE_S later; without events the check does not wake the agent (its period is the
    safety net, EVENT_PERIOD_S)."""
    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.probes import usb
    from agent.runner import Agent

    dev = next((d for d in sorted(os.listdir("/sys/block")) if d.startswith("loop")), None) \
        if os.path.isdir("/sys/block") else None
    if dev is None or not os.access(f"/sys/block/{dev}/uevent", os.W_OK):
        pytest.skip("needs root and a loop block device to make the kernel send a device event")
    looks: list[float] = []

    class Counting(usb.SysfsUsbSource):
        def drives(self) -> usb.Drives:
            looks.append(time.monotonic())
            return super().drives()

    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path)}, environ={})
    probe = usb.UsbProbe(Counting(str(tmp_path / "none"), str(tmp_path / "none")))
    a = Agent(cfg, probes=[probe], desktop=LogDesktop())
    try:
        probe.setup(a.ctx)
        if probe.events is None:
            pytest.skip("no kernel device events here")
        a.loop.sources.append(a.ticker)
        a._start_scheduler()
        assert a.ticker.period("usb") == usb.EVENT_PERIOD_S and not a.ticker.wakes("usb")
        a.loop.start()
        time.sleep(0.5)
        looks.clear()
        t0 = time.monotonic()
        with open(f"/sys/block/{dev}/uevent", "w", encoding="ascii") as f:
            f.write("change")
        wait_for(lambda: looks, usb.SETTLE_S + 3, what="the USB check after the device event")
        assert usb.SETTLE_S - 0.1 <= looks[0] - t0 < usb.SETTLE_S + 1
        time.sleep(0.5)
        assert len(looks) == 1 and not a.ticker.wakes("usb")  # waits for the next event again
    finally:
        a.loop.call_soon(a.loop.stop)
        a.loop.join(5)
        a.loop.close()
        probe.close()
        a.outbox.close()
