"""Simulated classroom PCs that speak the protocol (protocol.md §1) through a real broker (demo, tests, load).

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from zoneinfo import ZoneInfo

import protocol
from collector.devices.ingest import Incoming
from common import __version__
from common.mqttconf import BrokerConfig, make_client

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
    off = last + timedelta(minutes=rng.randint(5, 25))  # the school rule: switched off after use
    if rng.random() >= leave_on_prob:
        plan.steps.append((off, "power_off", {}))
    t = on + timedelta(seconds=heartbeat_s)
    end_hb = off if plan.steps[-1][1] == "power_off" else day_start + timedelta(hours=15, minutes=30)
    while t < end_hb:
        plan.steps.append((t, "heartbeat", {}))
        t += timedelta(seconds=heartbeat_s)
    plan.steps.sort(key=lambda s: s[0])
    return plan


Step = tuple[datetime, str, dict[str, Any]]


class SimDevice:
    """One simulated PC: its own MQTT connection (with a Last Will), seq counter and event ids."""

    def __init__(self, school: str, device: str, broker: BrokerConfig, clock: SimClock | None) -> None:
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
        self.disk_pct = 63.0
        self.last_heartbeat: datetime | None = None

    def _publish(self, topic: str, payload: bytes, retain: bool, when: datetime) -> Any:
        return self.client.publish(topic, payload, qos=1, retain=retain)

    def _event(self, etype: str, data: dict[str, Any], when: datetime) -> None:
        ev = protocol.make_event(uuid.uuid4().hex, self.seq, etype, when, data)
        self.seq += 1
        self._publish(protocol.events_topic(self.school, self.device), protocol.dumps(ev), False, when)
        self.published += 1

    def _status(self, online: bool, reason: str, when: datetime) -> bytes:
        return protocol.dumps(protocol.make_status(online, reason, when, self.boot_id, f"sim-{__version__}"))

    def connect(self, when: datetime) -> None:
        """Open the MQTT connection and say it is online (retained status, Last Will set)."""
        self.client = make_client(self.broker, self.device, clean_session=True)
        self.client.will_set(protocol.status_topic(self.school, self.device), self._status(False, "lost", when),
                             qos=1, retain=True)
        self.client.connect(self.broker.host, self.broker.port, self.broker.keepalive)
        self.client.loop_start()
        self._publish(protocol.status_topic(self.school, self.device), self._status(True, "startup", when), True, when)

    def disconnect(self, when: datetime) -> None:
        info = self._publish(protocol.status_topic(self.school, self.device), self._status(False, "shutdown", when),
                             True, when)
        info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def power_on(self, when: datetime) -> None:
        if self.on:
            return
        self.boot_id = uuid.uuid4().hex
        self.boot_time = when
        self.connect(when)
        self.on = True
        self._event("power", {"state": "on", "boot_time": protocol.format_time(when), "clean": True}, when)
        self.heartbeat(when)

    def heartbeat(self, when: datetime) -> None:
        if not self.on:
            return
        up = (when - self.boot_time).total_seconds() if self.boot_time else 0
        self.last_heartbeat = when
        self._event("heartbeat", {"in_use": self.in_use, "idle_s": 10 if self.in_use else 900,
                                  "cpu_pct": 25.0 if self.in_use else 3.0, "mem_pct": 41.0,
                                  "disk_pct": self.disk_pct, "uptime_s": int(up)}, when)

    def fault(self, when: datetime, code: str, severity: str = "warning", state: str = "raised",
              detail: str = "") -> None:
        """Report a fault raised or cleared (e.g. display_missing when the projector loses signal)."""
        if self.on:
            self._event("fault", {"code": code, "severity": severity, "state": state, "detail": detail}, when)

    def software(self, when: datetime, name: str, exe: str, rule: str, action: str = "detected") -> None:
        """A program the school's policy does not allow was found running."""
        if self.on:
            self._event("software", {"action": action, "name": name, "exe": exe, "rule": rule}, when)

    def set_disk(self, when: datetime, pct: float) -> None:
        self.disk_pct = pct

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
        self.disconnect(when)
        self.on = False

    def kill(self) -> None:
        """Drop the connection without a clean goodbye: the broker sends the Last Will."""
        if self.client is not None:
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                sock.close()
            self.on = False

    def do(self, step: Step) -> None:
        when, action, payload = step
        getattr(self, action)(when, **payload)


class _Sent:
    def wait_for_publish(self, timeout: float | None = None) -> bool:
        return True


class RecordingDevice(SimDevice):
    """A simulated PC whose messages are written down as the collector would have received them
    (``Incoming`` with the time they were sent): the demo's past days, stored without a broker."""

    def __init__(self, school: str, device: str) -> None:
        super().__init__(school, device, None, None)  # type: ignore[arg-type]
        self.messages: list[Incoming] = []

    def _publish(self, topic: str, payload: bytes, retain: bool, when: datetime) -> Any:
        self.messages.append(Incoming(topic, payload, when.timestamp(), qos=1, retain=retain))
        return _Sent()

    def connect(self, when: datetime) -> None:
        self._publish(protocol.status_topic(self.school, self.device), self._status(True, "startup", when), True, when)

    def disconnect(self, when: datetime) -> None:
        self._publish(protocol.status_topic(self.school, self.device), self._status(False, "shutdown", when),
                      True, when)

    def take(self) -> list[Incoming]:
        out, self.messages = self.messages, []
        return out

    def live(self, broker: BrokerConfig) -> SimDevice:
        """The same PC from now on, on a real connection: its seq, boot and session carry on."""
        dev = SimDevice(self.school, self.device, broker, None)
        for name in ("seq", "on", "in_use", "session", "boot_id", "boot_time", "disk_pct", "last_heartbeat"):
            setattr(dev, name, getattr(self, name))
        return dev


class Simulation:
    """Runs simulated PCs on the real clock: each does its steps when their time comes, and every PC
    that is on sends a heartbeat each ``heartbeat_s`` (the demo's live "today")."""

    def __init__(self, devices: list[SimDevice], steps: dict[str, list[Step]], tz: str = "Asia/Shanghai",
                 heartbeat_s: float = 60.0, clock: Callable[[], datetime] | None = None) -> None:
        self.tz = ZoneInfo(tz)
        self.clock = clock or (lambda: datetime.now(self.tz))
        self.devices = devices
        self.steps = {d: sorted(s, key=lambda x: x[0]) for d, s in steps.items()}
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.done_steps = 0

    def now(self) -> datetime:
        return self.clock()

    def add(self, device: str, step: Step) -> None:
        """One more step for a device (from another thread: taken at the next tick)."""
        with _LOCK:
            self.steps.setdefault(device, []).append(step)
            self.steps[device].sort(key=lambda x: x[0])

    def tick(self) -> None:
        now = self.now()
        for dev in self.devices:
            with _LOCK:
                due = [s for s in self.steps.get(dev.device, []) if s[0] <= now]
                self.steps[dev.device] = self.steps.get(dev.device, [])[len(due):]
            for step in due:
                try:
                    dev.do((now, step[1], step[2]))
                    self.done_steps += 1
                except Exception as e:  # one device failing must not stop the others
                    log.warning("sim %s %s failed: %s", dev.device, step[1], e)
            if dev.on and (dev.last_heartbeat is None
                           or (now - dev.last_heartbeat).total_seconds() >= self.heartbeat_s):
                try:
                    dev.heartbeat(now)
                except Exception as e:
                    log.warning("sim %s heartbeat failed: %s", dev.device, e)

    def run(self) -> None:
        while not self._stop.wait(0.2):
            self.tick()

    def start(self) -> None:
        for dev in self.devices:
            if dev.on and dev.client is None:
                dev.connect(self.now())
        self.thread = threading.Thread(target=self.run, name="bbt-sim", daemon=True)
        self.thread.start()

    def stop(self, power_off: bool = True) -> None:
        self._stop.set()
        if self.thread:
            self.thread.join(5)
        for dev in self.devices:
            if dev.on and dev.client is not None:
                try:
                    if power_off:
                        dev.power_off(self.now())
                    else:  # the demo stops: the PCs just go away (a clean disconnect, no power event)
                        dev.disconnect(self.now())
                except Exception as e:
                    log.debug("sim stop %s: %s", dev.device, e)


_LOCK = threading.Lock()
