"""A collector, an alert engine and simulated PCs on a real Mosquitto, with a local webhook receiver."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from alerts import config
from alerts.engine import AlertEngine
from alerts.schedule import Schedule
from bbt.sim import SimClock, SimDevice
from collector.intake.service import Collector
from collector.school.imports import import_devices
from common.mqttconf import BrokerConfig
from tests.webhook import WebhookReceiver

TZ = ZoneInfo("Asia/Shanghai")
DING_TOKEN, DING_SECRET = "abc123token", "SECabc123secret"


class ManualClock:
    """A clock that runs at real speed from a time the test sets (and can jump)."""

    def __init__(self, t: float) -> None:
        self.lock = threading.Lock()
        self.set(t)

    def __call__(self) -> float:
        with self.lock:
            return self.base + (time.monotonic() - self.real)

    def set(self, t: float) -> None:
        with self.lock:
            self.base, self.real = t, time.monotonic()


def local_ts(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp()


def school_config(receiver: WebhookReceiver, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "channels": {
            "maint": {"url": "wecombot://maintkey", "person": "王师傅", "endpoint": receiver.url},
            "boss": {"url": f"dingtalk://{DING_SECRET}@{DING_TOKEN}/", "person": "李主任",
                     "endpoint": receiver.url},
        },
        "routes": [{"match": {"min_severity": "warning"}, "channels": ["maint"]}],
        "group_wait_s": 1,
        "quiet_hours": None,
        "rules": {"left_on": {"enabled": False}, "agent_silent": {"enabled": False}},
        "base_url": "http://bbt.school.test",
    }
    cfg.update(over)
    return cfg


class Rig:
    def __init__(self, tmp: Path, broker_port: int, receiver: WebhookReceiver, school: str = "s1",
                 schedule: Schedule | None = None, clock: Callable[[], float] = time.time,
                 rate_window_s: float = 60.0) -> None:
        self.school = school
        self.tmp = tmp
        self.broker = BrokerConfig(host="127.0.0.1", port=broker_port)
        self.receiver = receiver
        self.collector = Collector(str(tmp / "bbt.db"), self.broker, client_id="alerts-test-collector")
        self.db = self.collector.db
        self.engine = AlertEngine(self.db, schedule, clock=clock, interval_s=0.3, min_gap_s=0.05,
                                  rate_window_s=rate_window_s)
        self.collector.add_listener(self.engine.on_batch)
        self.simclock = SimClock(datetime.now(TZ), speed=1.0)
        self.devices: dict[str, SimDevice] = {}

    def configure(self, cfg: dict[str, Any]) -> None:
        config.save(self.db, self.school, cfg)

    def import_devices(self, rows: list[tuple[str, str, str, str]]) -> None:
        """(device, class, building, floor) rows through the real CSV import."""
        path = self.tmp / "devices.csv"
        path.write_text("device,class,building,floor\n" + "".join(f"{d},{c},{b},{f}\n" for d, c, b, f in rows),
                        encoding="utf-8")
        import_devices(self.db, self.school, path)

    def start(self) -> Rig:
        self.collector.start()
        assert self.collector.connected.wait(10)
        self.engine.start(poll_s=0.1)
        return self

    def power_on(self, names: list[str]) -> None:
        for n in names:
            dev = SimDevice(self.school, n, self.broker, self.simclock)
            dev.power_on(self.simclock.now())
            self.devices[n] = dev

    def fault(self, name: str, code: str, severity: str = "warning", state: str = "raised") -> None:
        self.devices[name].fault(self.simclock.now(), code, severity, state)

    def stop(self) -> None:
        for dev in self.devices.values():
            if dev.on:
                try:
                    dev.power_off(self.simclock.now())
                except Exception:
                    dev.kill()
        self.engine.stop()
        self.collector.stop()
