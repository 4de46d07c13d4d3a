"""Per-lesson certainty (measured / device offline / agent gap) and data_missing flags."""
from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from collector.db import Database
from collector.rates import certainty as c

TZ = ZoneInfo("Asia/Shanghai")
HB = 60.0
L0 = c._epoch("2026-11-23", "08:00", TZ)  # a 45-minute lesson
L1 = L0 + 45 * 60


def hbs(start: float, end: float) -> list[float]:
    return [start + i * HB for i in range(int((end - start) // HB) + 1)]


def test_full_heartbeats_are_measured() -> None:
    trace = c.DeviceTrace(hbs(L0 - 600, L1 + 600), [])
    assert c.certainty(L0, L1, trace, HB) == ("measured", 0.0)


def test_silence_after_an_announced_power_off_is_device_offline() -> None:
    beats = hbs(L0 - 600, L0 + 300)
    off = c.off_intervals([(t, "heartbeat", "") for t in beats] + [(L0 + 310, "power", "off")], L1 + 3600)
    assert off == [(L0 + 310, L1 + 3600)]
    assert c.certainty(L0, L1, c.DeviceTrace(beats, off), HB)[0] == "device_offline"
    # a device that was switched off the evening before and never came back
    assert c.certainty(L0, L1, c.DeviceTrace([], c.off_intervals([(L0 - 40000, "status", "shutdown")], L1)),
                       HB)[0] == "device_offline"


def test_unannounced_silence_is_an_agent_gap() -> None:
    beats = hbs(L0 - 600, L0 + 600) + hbs(L0 + 2400, L1 + 600)  # silent for ~28 minutes, no off
    label, missing = c.certainty(L0, L1, c.DeviceTrace(beats, []), HB)
    assert label == "agent_gap" and 25 * 60 < missing < 30 * 60
    # the agent killed: a status "lost" is not an announcement
    off = c.off_intervals([(L0 + 600, "status", "lost")], L1)
    assert c.certainty(L0, L1, c.DeviceTrace(hbs(L0 - 600, L0 + 600), off), HB)[0] == "agent_gap"
    # a woken device is on again: heartbeats cover it, anything after the wake is not "offline"
    off = c.off_intervals([(L0 - 100, "power", "sleep"), (L0 + 60, "power", "wake")], L1)
    assert off == [(L0 - 100, L0 + 60)]


def add(db: Database, device: str, t: float, etype: str, data: dict) -> None:
    db.execute("INSERT INTO devices (school, device) VALUES ('s1', ?) ON CONFLICT (school, device) DO NOTHING",
               (device,))
    db.execute("INSERT INTO events (school, device, id, seq, type, ts, t, received, data) "
               "VALUES ('s1', ?, ?, 0, ?, 'x', ?, ?, ?)", (device, f"{device}-{etype}-{t}", etype, t, t,
                                                           json.dumps(data, separators=(",", ":"))))


def test_annotate_and_flag_from_the_store(db: Database) -> None:
    with db.transaction():
        for t in hbs(L0 - 600, L1 + 600):
            add(db, "pc-ok", t, "heartbeat", {"in_use": True})
        for t in hbs(L0 - 600, L0 + 300):
            add(db, "pc-off", t, "heartbeat", {"in_use": False})
            add(db, "pc-killed", t, "heartbeat", {"in_use": False})
        add(db, "pc-off", L0 + 310, "power", {"state": "off"})
    rows: list[dict[str, Any]] = [
        {"date": "2026-11-23", "class": k, "period": 1, "start": "08:00", "end": "08:45", "device": d,
         "status": "not_used"} for k, d in (("一(1)班", "pc-ok"), ("一(2)班", "pc-off"), ("一(3)班", "pc-killed"))]
    rows.append({"date": "2026-11-23", "class": "一(4)班", "period": 1, "start": "08:00", "end": "08:45",
                 "device": None, "status": "no_device"})
    c.annotate(db, "s1", rows, TZ, HB, now=L1 + 3600)
    assert [r["certainty"] for r in rows] == ["measured", "device_offline", "agent_gap", None]
    assert rows[2]["certainty_zh"] == "数据缺失" and rows[2]["missing_minutes"] > 30
    assert c.flag_missing(db, "s1", rows, TZ) == 1
    assert c.flag_missing(db, "s1", rows, TZ) == 0, "once per lesson"
    [f] = db.query("SELECT device, code, severity, opened_t, cleared_t FROM faults WHERE code = 'data_missing'")
    assert (f["device"], f["severity"], f["opened_t"], f["cleared_t"]) == ("pc-killed", "info", L0, L1)


def test_an_off_announced_by_a_stopped_agent_is_no_excuse(db: Database) -> None:
    with db.transaction():
        for t in hbs(L0 - 600, L0 + 300):
            add(db, "pc-s", t, "heartbeat", {"in_use": False})
        add(db, "pc-s", L0 + 310, "power", {"state": "off"})  # the service was stopped, the PC kept running
        db.execute("INSERT INTO faults (school, device, code, severity, source, opened_t, cleared_t) "
                   "VALUES ('s1', 'pc-s', 'agent_stopped', 'info', 'agent', ?, ?)", (L0 + 300, L1 + 600))
    rows: list[dict[str, Any]] = [{"date": "2026-11-23", "class": "一(1)班", "period": 1, "start": "08:00",
                                   "end": "08:45", "device": "pc-s", "status": "device_off"}]
    assert c.annotate(db, "s1", rows, TZ, HB, now=L1 + 3600)[0]["certainty"] == "agent_gap"
    assert c.subtract([(0, 10), (20, 30)], [(5, 25)]) == [(0, 5), (25, 30)]


def test_agent_reports_a_service_stopped_while_the_pc_ran(tmp_path: Any) -> None:
    import time as _time

    from agent.config import AgentConfig
    from agent.context import Context
    from agent.outbox import Outbox
    from agent.probes.power import AliveMark, PowerProbe

    cfg = AgentConfig(school="s1", device="pc-1", data_dir=str(tmp_path)).check()
    now = _time.time()
    box = Outbox(str(tmp_path / "outbox.db"))
    try:
        ctx = Context(cfg, box)
        alive = AliveMark(str(tmp_path / "alive"))
        alive.touch(now - 1800)  # stopped cleanly 30 minutes ago ...
        PowerProbe(boot_time=lambda: now - 86400, wall=lambda: now).setup(ctx)  # ... the OS up since yesterday
        faults = [ev for _, ev in box.peek() if ev["type"] == "fault" and ev["data"]["code"] == "agent_stopped"]
        assert [f["data"]["state"] for f in faults] == ["raised", "cleared"]
        assert faults[0]["data"]["severity"] == "info"
        box.remove([s for s, _ in box.peek()])
        box.set_meta("running", "0")
        alive.touch(now - 60)
        PowerProbe(boot_time=lambda: now - 30, wall=lambda: now).setup(ctx)  # a reboot: not a stopped agent
        assert not [ev for _, ev in box.peek() if ev["type"] == "fault" and ev["data"]["code"] == "agent_stopped"]
    finally:
        box.close()
