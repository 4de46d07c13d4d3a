"""Simulated classroom PCs that speak the contract through a real broker (demo, tests, load).

Each simulated device has its own MQTT connection with a Last Will, its own seq counter and
event ids, and follows a school day on an accelerated clock: powered on in the morning,
used in the lessons its teachers use it for, powered off after school (or left on).
"""
from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

import protocol
from bbt import __version__
from bbt.mqttconf import BrokerConfig, make_client

log = logging.getLogger(__name__)


class SimClock:
    """Simulated time: starts at ``start`` and runs ``speed`` times faster than real time."""

    def __init__(self, start: datetime, speed: float = 60.0) -> None:
        self.speed = speed
        self._lock = threading.Lock()
        self._base_sim = start
        self._base_real = time.monotonic()

    def now(self) -> datetime:
        with self._lock:
            return self._base_sim + timedelta(seconds=(time.monotonic() - self._base_real) * self.speed)

    def jump(self, to: datetime) -> None:
        with self._lock:
            self._base_sim = to
            self._base_real = time.monotonic()


@dataclass
class Plan:
    """What one device does on one day, as (sim time, action, payload) steps."""

    steps: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Lesson:
    start: datetime
    end: datetime
    use_prob: float


def plan_day(rng: random.Random, day_start: datetime, lessons: list[Lesson], leave_on_prob: float = 0.05,
             heartbeat_s: int = 60) -> Plan:
    """Power on before the first lesson, sessions in the used lessons, power off after school."""
    plan = Plan()
    if not lessons:
        return plan
    first = min(ls.start for ls in lessons)
    last = max(ls.end for ls in lessons)
    on = first - timedelta(minutes=rng.randint(5, 30))
    plan.steps.append((on, "power_on", {}))
    for ls in sorted(lessons, key=lambda x: x.start):
        if rng.random() >= ls.use_prob:
            continue
        s = ls.start + timedelta(minutes=rng.randint(0, 4))
        e = ls.end - timedelta(minutes=rng.randint(0, 6))
        plan.steps.append((s, "session_start", {}))
        plan.steps.append((e, "session_end", {}))
    off = last + timedelta(minutes=rng.randint(5, 60))
    if rng.random() >= leave_on_prob:
        plan.steps.append((off, "power_off", {}))
    t = on + timedelta(seconds=heartbeat_s)
    end_hb = off if plan.steps[-1][1] == "power_off" else day_start + timedelta(hours=15, minutes=30)
    while t < end_hb:
        plan.steps.append((t, "heartbeat", {}))
        t += timedelta(seconds=heartbeat_s)
    plan.steps.sort(key=lambda s: s[0])
    return plan


class SimDevice:
    def __init__(self, school: str, device: str, broker: BrokerConfig, clock: SimClock) -> None:
        self.school = school
        self.device = device
        self.broker = broker
        self.clock = clock
        self.seq = 0
        self.client: Any = None
        self.on = False
        self.in_use = False
        self.session: tuple[str, datetime] | None = None
        self.boot_id = ""
        self.boot_time: datetime | None = None
        self.published = 0

    def _event(self, etype: str, data: dict[str, Any], when: datetime) -> None:
        ev = protocol.make_event(uuid.uuid4().hex, self.seq, etype, when, data)
        self.seq += 1
        self.client.publish(protocol.events_topic(self.school, self.device), protocol.dumps(ev), qos=1)
        self.published += 1

    def _status(self, online: bool, reason: str, when: datetime) -> bytes:
        return protocol.dumps(protocol.make_status(online, reason, when, self.boot_id, f"sim-{__version__}"))

    def power_on(self, when: datetime) -> None:
        if self.on:
            return
        self.boot_id = uuid.uuid4().hex
        self.boot_time = when
        self.client = make_client(self.broker, self.device, clean_session=True)
        self.client.will_set(protocol.status_topic(self.school, self.device), self._status(False, "lost", when),
                             qos=1, retain=True)
        self.client.connect(self.broker.host, self.broker.port, self.broker.keepalive)
        self.client.loop_start()
        self.client.publish(protocol.status_topic(self.school, self.device), self._status(True, "startup", when),
                            qos=1, retain=True)
        self.on = True
        self._event("power", {"state": "on", "boot_time": protocol.format_time(when), "clean": True}, when)
        self.heartbeat(when)

    def heartbeat(self, when: datetime) -> None:
        if not self.on:
            return
        up = (when - self.boot_time).total_seconds() if self.boot_time else 0
        self._event("heartbeat", {"in_use": self.in_use, "idle_s": 10 if self.in_use else 900,
                                  "cpu_pct": 25.0 if self.in_use else 3.0, "mem_pct": 41.0, "disk_pct": 63.0,
                                  "uptime_s": int(up)}, when)

    def fault(self, when: datetime, code: str, severity: str = "warning", state: str = "raised",
              detail: str = "") -> None:
        """Report a fault raised or cleared (e.g. display_missing when the projector loses signal)."""
        if self.on:
            self._event("fault", {"code": code, "severity": severity, "state": state, "detail": detail}, when)

    def session_start(self, when: datetime) -> None:
        if not self.on or self.in_use:
            return
        self.in_use = True
        self.session = (uuid.uuid4().hex[:16], when)
        self._event("session", {"state": "start", "session_id": self.session[0]}, when)
        self.heartbeat(when)

    def session_end(self, when: datetime) -> None:
        if not self.on or not self.in_use or self.session is None:
            return
        sid, start = self.session
        self.in_use = False
        self.session = None
        self._event("session", {"state": "end", "session_id": sid, "start": protocol.format_time(start),
                                "end": protocol.format_time(when),
                                "active_s": int((when - start).total_seconds())}, when)
        self.heartbeat(when)

    def power_off(self, when: datetime) -> None:
        if not self.on:
            return
        self.session_end(when)
        self._event("power", {"state": "off"}, when)
        info = self.client.publish(protocol.status_topic(self.school, self.device),
                                   self._status(False, "shutdown", when), qos=1, retain=True)
        info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()
        self.on = False

    def kill(self) -> None:
        """Drop the connection without a clean goodbye: the broker sends the Last Will."""
        if self.client is not None:
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            self.on = False


LessonSource = Callable[[str, date], list[Lesson]]


class Simulation:
    """Runs devices through school days on a SimClock, skipping nights and weekends."""

    def __init__(self, school: str, devices: list[str], broker: BrokerConfig, lessons_for: LessonSource,
                 days: list[date], tz: str = "Asia/Shanghai", speed: float = 60.0, seed: int = 1,
                 passwords: dict[str, str] | None = None) -> None:
        """``passwords``: each device's MQTT password (collector.credentials.provision), for a broker
        that authenticates PCs; the username is the device id."""
        self.tz = ZoneInfo(tz)
        self.days = days
        self.lessons_for = lessons_for
        self.rng = random.Random(seed)
        self.clock = SimClock(self._day_start(days[0]), speed)
        self.devices = [SimDevice(school, d, broker if passwords is None else
                                  replace(broker, username=d, password=passwords[d]), self.clock) for d in devices]
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.day_index = 0
        self.finished = threading.Event()

    def _day_start(self, d: date) -> datetime:
        return datetime(d.year, d.month, d.day, 7, 0, tzinfo=self.tz)

    def run(self) -> None:
        for i, d in enumerate(self.days):
            if self._stop.is_set():
                break
            self.day_index = i
            self.clock.jump(self._day_start(d))
            plans = [(dev, plan_day(self.rng, self._day_start(d), self.lessons_for(dev.device, d)).steps)
                     for dev in self.devices]
            self._play(plans, self._day_start(d) + timedelta(hours=12))
        self.finished.set()

    def _play(self, plans: list[tuple[SimDevice, list[tuple[datetime, str, dict[str, Any]]]]],
              day_end: datetime) -> None:
        cursors = [0] * len(plans)
        while not self._stop.is_set():
            now = self.clock.now()
            pending = False
            for i, (dev, steps) in enumerate(plans):
                while cursors[i] < len(steps) and steps[cursors[i]][0] <= now:
                    when, action, _ = steps[cursors[i]]
                    try:
                        getattr(dev, action)(when)
                    except Exception as e:  # one device failing must not stop the others
                        log.warning("sim %s %s failed: %s", dev.device, action, e)
                    cursors[i] += 1
                pending = pending or cursors[i] < len(steps)
            if not pending and now >= day_end:
                return
            self._stop.wait(0.05)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="bbt-sim", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.thread:
            self.thread.join(5)
        for dev in self.devices:
            if dev.on:
                try:
                    dev.power_off(self.clock.now())
                except Exception as e:
                    log.debug("sim stop %s: %s", dev.device, e)
