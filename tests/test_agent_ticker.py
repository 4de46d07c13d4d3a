"""The agent's shared tick, the kernel's process events for the program scan, the end-of-day trigger."""
from __future__ import annotations

import shutil
import struct
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from agent.commands import eod_trigger
from agent.probes import execwatch, software
from agent.ticker import Ticker
from tests.test_agent_probes import FakeTable, events, make_ctx


# -- ticker --------------------------------------------------------------------------------------
def test_periods_round_up_to_whole_ticks_and_due_jobs_share_a_tick() -> None:
    t = Ticker(10.0)
    assert [t.ticks_for(p) for p in (0.5, 10, 15, 20, 30, 60, 86400)] == [1, 1, 2, 2, 3, 6, 8640]
    for name, period in (("scan", 10), ("usb", 30), ("heartbeat", 60)):
        t.add(name, lambda: None, period)
    runs = {tick: [j.name for j in t.due_jobs(tick)] for tick in range(1, 13)}
    assert runs[1] == ["scan"] and runs[3] == ["scan", "usb"] and runs[6] == ["scan", "usb", "heartbeat"]
    assert sum("heartbeat" in names for names in runs.values()) == 2
    assert [j.name for j in t.due_jobs(40)] == ["scan", "usb", "heartbeat"]  # a stall: each runs once
    assert [j.name for j in t.due_jobs(41)] == ["scan"]  # ... and is not made up for afterwards
    t.set_period("heartbeat", 20)  # the policy's heartbeat_s: due within the new period
    assert "heartbeat" in [j.name for j in t.due_jobs(42)]
    assert t.period("heartbeat") == 20.0
    with pytest.raises(ValueError, match="tick_s"):
        Ticker(0)


def test_ticker_runs_jobs_in_one_thread_survives_a_failing_one_and_runs_soon() -> None:
    t = Ticker(0.05)
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
    t.start()
    try:
        assert done.wait(5), "the ticker stopped after a failing job"
        t.run_soon("slow")
        deadline = time.monotonic() + 5
        while ("slow", "bbt-agent-ticker") not in seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        t.stop()
    assert ("slow", "bbt-agent-ticker") in seen
    assert {th for _, th in seen} == {"bbt-agent-ticker"}


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
    probe = software.SoftwareProbe(table)
    probe.setup(ctx)  # the first scan lists everything
    assert table.listed == 1 and len(events(ctx, "software")) == 1
    for _ in range(5):
        probe.run(ctx)  # nothing started: /proc is not listed
    assert table.listed == 1
    table.procs[12] = (now - 50, "QQ.exe", "C:/Program Files/Tencent/QQ.exe")
    table.news = [12]
    probe.run(ctx)
    assert table.listed == 1 and [e["data"]["name"] for e in events(ctx, "software")] == ["steam", "QQ.exe"]
    table.news = None  # events were lost: look at everything
    table.procs[13] = (now - 10, "wechat", "/opt/wechat/wechat")
    probe.run(ctx)
    assert table.listed == 2 and len(events(ctx, "software")) == 3
    for _ in range(software.FULL_SCAN_EVERY):
        probe.run(ctx)
    assert table.listed == 3  # the periodic full scan, a safety net
    assert len(events(ctx, "software")) == 3  # and nothing reported twice


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
    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.runner import Agent

    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path)}, environ={})
    a = Agent(cfg, probes=[], desktop=LogDesktop())
    a._start_scheduler()
    try:
        assert a.scheduler is None  # the default policy has no end-of-day shutdown
        a.ctx.set_policy({"shutdown_after": "17:30"})
        assert a.scheduler is not None
        job = a.scheduler.get_job("end-of-day")
        assert job is not None and "hour='17', minute='30-59'" in str(job.trigger)
        a.ctx.set_policy({"shutdown_after": "18:05"})
        job = a.scheduler.get_job("end-of-day")
        assert job is not None and "hour='18', minute='5-59'" in str(job.trigger)
        a.ctx.set_policy({})  # removed from the policy: no job
        assert a.scheduler.get_job("end-of-day") is None
    finally:
        assert a.ticker is not None
        a.ticker.stop()
        if a.scheduler is not None:
            a.scheduler.shutdown(wait=True)
        a.outbox.close()
