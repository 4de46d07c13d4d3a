"""Writing a device's day as contract events (for the usage tests): sessions, heartbeats, reboots."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import protocol

TZ = ZoneInfo("Asia/Shanghai")


def at(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=TZ)


class DeviceScript:
    def __init__(self, device: str) -> None:
        self.device = device
        self.events: list[dict[str, Any]] = []
        self._sid = 0

    def _add(self, etype: str, when: datetime, data: dict[str, Any]) -> None:
        seq = len(self.events)
        self.events.append(protocol.make_event(f"{self.device}-{seq}", seq, etype, when, data))

    def power_on(self, day: str, hhmm: str) -> DeviceScript:
        w = at(day, hhmm)
        self._add("power", w, {"state": "on", "boot_time": protocol.format_time(w), "clean": True})
        return self

    def power_off(self, day: str, hhmm: str) -> DeviceScript:
        self._add("power", at(day, hhmm), {"state": "off"})
        return self

    def hb(self, day: str, hhmm: str, in_use: bool) -> DeviceScript:
        self._add("heartbeat", at(day, hhmm), {"in_use": in_use, "idle_s": 5 if in_use else 900, "cpu_pct": 10.0,
                                               "mem_pct": 40.0, "disk_pct": 50.0, "uptime_s": 100})
        return self

    def heartbeats(self, day: str, start: str, end: str, in_use: bool = False, every_min: int = 5) -> DeviceScript:
        t, stop = at(day, start), at(day, end)
        while t <= stop:
            self.hb(day, t.strftime("%H:%M"), in_use)
            t += timedelta(minutes=every_min)
        return self

    def start(self, day: str, hhmm: str) -> DeviceScript:
        self._sid += 1
        self._add("session", at(day, hhmm), {"state": "start", "session_id": f"s{self._sid}"})
        return self

    def end(self, day: str, start: str, hhmm: str) -> DeviceScript:
        a, b = at(day, start), at(day, hhmm)
        self._add("session", b, {"state": "end", "session_id": f"s{self._sid}", "start": protocol.format_time(a),
                                 "end": protocol.format_time(b), "active_s": int((b - a).total_seconds())})
        return self

    def session(self, day: str, start: str, end: str) -> DeviceScript:
        return self.start(day, start).end(day, start, end)

    def fault(self, day: str, hhmm: str, code: str, severity: str, state: str) -> DeviceScript:
        self._add("fault", at(day, hhmm), {"code": code, "severity": severity, "state": state, "detail": "test"})
        return self


def ingest(db: Any, school: str, scripts: list[DeviceScript]) -> int:
    """Store scripted events through the collector's own validation and store (no broker)."""
    import time

    from collector.devices.ingest import Incoming, prepare
    from collector.intake.store import apply_batch

    stored = 0
    for dev in scripts:
        for i in range(0, len(dev.events), 200):
            msg = Incoming(protocol.events_topic(school, dev.device), protocol.dumps(dev.events[i:i + 200]),
                           time.time(), qos=1)
            stored += apply_batch(db, [prepare(msg)]).stored
    return stored
