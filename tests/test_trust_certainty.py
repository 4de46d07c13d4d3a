"""Per-lesson certainty (measured / device offline / agent gap) and data_missing flags."""
from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from collector import certainty as c
from collector.db import Database

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
