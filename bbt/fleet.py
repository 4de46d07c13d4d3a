"""A district of simulated classroom PCs (`bbt simulate`): many schools, thousands of devices,
realistic school days, through a real broker over a small pool of MQTT connections.

Each device is one classroom's PC with its own identity (school, device id, seq counter, event
ids). Its day is generated lazily (a generator per device, merged by time), so 10,000 devices
cost a few MB: power on before the first lesson, sessions in the lessons whose teacher uses the
device (most teachers in most lessons, some rarely), heartbeats, now and then a fault raised and
cleared, a game started in a break, a power cut in one building (no goodbye: the device just
stops, and comes back with ``clean: false`` and an ``unclean_shutdown`` fault), and some devices
left on after school.

Pooled connections and offline: a device does not have its own MQTT connection here, so it
has no Last Will of its own (a Will belongs to a connection). The pool publishes each device's
retained status itself: ``online: true, reason: startup`` at power on, ``reason: shutdown`` at a
clean power off, and ``reason: lost`` at a power cut — the message the broker would have sent
as that device's Will. If the simulator itself dies, its devices stop sending heartbeats and
the collector marks them offline after three missed heartbeats. Each pool connection has a Will
on ``bbt-sim/pool/<n>/status`` (outside ``bbt/v1``, so the collector ignores it) saying that
pool's devices went silent. Pooled publishing is for test brokers: with the production ACL a
connection may publish only under its own device's topics.

Events due in the same tick for one device go out as one JSON array (at most 500), as an agent
sends its outbox; at ``speed`` 0 the day runs as fast as the broker takes it.
"""
from __future__ import annotations

import csv
import heapq
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import protocol
from common import __version__
from common.mqttconf import BrokerConfig, make_client

log = logging.getLogger(__name__)

BELL = [("08:00", "08:40"), ("08:50", "09:30"), ("09:50", "10:30"), ("10:40", "11:20"),
        ("14:00", "14:40"), ("14:50", "15:30"), ("15:40", "16:20"), ("16:30", "17:10")]
FAULTS = [("display_missing", "warning"), ("overheat", "warning"), ("disk_full", "critical")]
GAMES = [("4399小游戏", r"C:\Users\Public\4399\4399.exe"), ("英雄联盟", r"D:\Games\LeagueClient.exe"),
         ("植物大战僵尸", r"C:\PvZ\PlantsVsZombies.exe")]
Step = tuple[float, str, str, dict]  # (epoch seconds, "event" | "status", type or reason, data)


@dataclass
class FleetSpec:
    schools: int = 2
    devices: int = 36  # per school
    day: date | None = None  # default: the last weekday before today (events must not be in the future)
    tz: str = "Asia/Shanghai"
    heartbeat_s: int = 60
    seed: int = 1
    rare_teachers: float = 0.15  # share of teachers who rarely use the device
    leave_on: float = 0.05  # devices left on after school
    fault_rate: float = 0.03  # per device and day
    game_rate: float = 0.04  # per device and day
    power_cut_rate: float = 0.1  # per school and day: one building loses power for a while
    connections: int = 0  # pooled MQTT connections (0: one per 500 devices)

    def school_ids(self) -> list[str]:
        return [f"sch{i + 1:03d}" for i in range(self.schools)]

    def device_ids(self) -> list[str]:
        return [f"pc{i + 1:04d}" for i in range(self.devices)]


def last_weekday(today: date) -> date:
    d = today - timedelta(days=1)
    while d.isoweekday() > 5:
        d -= timedelta(days=1)
    return d


@dataclass
class DeviceDay:
    school: str
    device: str
    lessons: list[tuple[float, float, float]]  # (start, end, use probability)
    klass: str = ""
    timetable: list[tuple[int, str]] = field(default_factory=list)  # (period, teacher) of each lesson
    power_cut: tuple[float, float] | None = None  # (from, to)


def plan_schools(spec: FleetSpec, day: date) -> list[DeviceDay]:
    """Every device's lessons for the day: 7 of the 8 periods, each with its teacher's habit."""
    tz = ZoneInfo(spec.tz)
    rng = random.Random(spec.seed)
    bell = [(_at(day, s, tz), _at(day, e, tz)) for s, e in BELL]
    out = []
    for school in spec.school_ids():
        habits = [rng.uniform(0.05, 0.3) if rng.random() < spec.rare_teachers else rng.uniform(0.75, 0.98)
                  for _ in range(max(4, spec.devices // 2))]
        cut = None
        if rng.random() < spec.power_cut_rate:
            start = bell[0][0] + rng.uniform(0, bell[-1][1] - bell[0][0])
            cut = (start, start + rng.uniform(600, 3600))
        for i, device in enumerate(spec.device_ids()):
            free = rng.randrange(len(bell))
            who = [(p, rng.randrange(len(habits))) for p in range(len(bell)) if p != free]
            lessons = [(bell[p][0], bell[p][1], habits[t]) for p, t in who]
            in_cut_building = cut is not None and i < spec.devices // 2  # building A
            out.append(DeviceDay(school, device, lessons, klass=f"{i + 1}班",
                                 timetable=[(p + 1, f"教师{t + 1:03d}") for p, t in who],
                                 power_cut=cut if in_cut_building else None))
    return out


def _at(day: date, hhmm: str, tz: ZoneInfo) -> float:
    h, m = map(int, hhmm.split(":"))
    return datetime(day.year, day.month, day.day, h, m, tzinfo=tz).timestamp()


class DeviceSim:
    """One device's identity and counters; ``day()`` yields its steps in time order."""

    def __init__(self, school: str, device: str, run: str) -> None:
        self.school = school
        self.device = device
        self.run = run
        self.seq = 0
        self.in_use = False
        self.boot_t = 0.0
        self.events_topic = protocol.events_topic(school, device)
        self.status_topic = protocol.status_topic(school, device)

    def event(self, t: float, etype: str, data: dict, tz: ZoneInfo) -> dict:
        if etype == "heartbeat":
            data = {"in_use": self.in_use, "idle_s": 20 if self.in_use else 900,
                    "cpu_pct": 22.0 if self.in_use else 4.0, "mem_pct": 38.0, "disk_pct": 61.0,
                    "uptime_s": int(t - self.boot_t)}
        elif etype == "session":
            self.in_use = data["state"] == "start"
        elif etype == "power":
            self.in_use = False
            if data["state"] == "on":
                self.boot_t = t
        ev = {"id": f"{self.run}-{self.seq}", "seq": self.seq, "type": etype,
              "ts": datetime.fromtimestamp(round(t), tz).isoformat(), "data": data}
        self.seq += 1
        return ev


def device_day(plan: DeviceDay, spec: FleetSpec, rng: random.Random) -> Iterator[Step]:
    """The day of one device as time-ordered steps (generated lazily)."""
    steps: list[Step] = []
    first, last = plan.lessons[0][0], plan.lessons[-1][1]
    on = first - rng.uniform(5, 30) * 60
    off = None if rng.random() < spec.leave_on else last + rng.uniform(5, 60) * 60
    end_of_day = last + 3 * 3600  # a device left on keeps sending heartbeats until then
    cut = plan.power_cut
    boot = uuid.uuid4().hex
    steps.append((on, "status", "startup", {"boot_id": boot}))
    steps.append((on, "event", "power", {"state": "on", "boot_time": on, "clean": True}))
    sessions: list[tuple[float, float]] = []
    for start, end, p in plan.lessons:
        if rng.random() < p:
            s, e = start + rng.uniform(0, 240), end - rng.uniform(0, 360)
            sessions.append((s, e))
    for n, (s, e) in enumerate(sessions):
        sid = f"{boot[:8]}-{n}"
        steps.append((s, "event", "session", {"state": "start", "session_id": sid}))
        steps.append((e, "event", "session", {"state": "end", "session_id": sid, "start": s, "end": e,
                                               "active_s": int(e - s)}))
    if rng.random() < spec.fault_rate:
        code, sev = rng.choice(FAULTS)
        t = rng.uniform(on, last)
        steps.append((t, "event", "fault", {"code": code, "severity": sev, "state": "raised", "detail": "sim"}))
        if rng.random() < 0.7:
            steps.append((t + rng.uniform(600, 7200), "event", "fault",
                          {"code": code, "severity": sev, "state": "cleared", "detail": "sim"}))
    if rng.random() < spec.game_rate:
        name, exe = rng.choice(GAMES)
        steps.append((rng.uniform(first, last), "event", "software",
                      {"action": "detected", "name": name, "exe": exe, "rule": "deny:games"}))
    stop = off if off is not None else end_of_day
    if off is not None:
        steps.append((off, "event", "power", {"state": "off"}))
        steps.append((off, "status", "shutdown", {"boot_id": boot}))
    steps.sort(key=lambda s: s[0])
    if cut is not None and on < cut[0] < stop:
        steps = _with_power_cut(steps, cut)
    yield from heapq.merge(steps, _heartbeats(on + spec.heartbeat_s, stop, spec.heartbeat_s, cut),
                           key=lambda s: s[0])


def _heartbeats(t: float, stop: float, every: int, cut: tuple[float, float] | None) -> Iterator[Step]:
    while t < stop:
        if cut is None or not cut[0] <= t < cut[1]:
            yield (t, "event", "heartbeat", {})
        t += every


def _with_power_cut(steps: list[Step], cut: tuple[float, float]) -> list[Step]:
    """Nothing during the cut; 'lost' at its start; an unclean boot after it."""
    a, b = cut
    kept = [s for s in steps if not a <= s[0] < b]
    boot = uuid.uuid4().hex
    kept += [(a, "status", "lost", {}), (b, "status", "startup", {"boot_id": boot}),
             (b, "event", "power", {"state": "on", "boot_time": b, "clean": False}),
             (b, "event", "fault", {"code": "unclean_shutdown", "severity": "warning", "state": "raised",
                                    "detail": "power lost"}),
             (b + 300, "event", "fault", {"code": "unclean_shutdown", "severity": "warning", "state": "cleared",
                                          "detail": "power lost"})]
    # a session running when the power went never ends (its agent died with it)
    cut_short = {st[3]["session_id"] for st in steps
                 if st[2] == "session" and st[3]["state"] == "end" and st[3]["start"] < a < st[3]["end"]}
    kept = [s for s in kept if not (s[2] == "session" and s[3]["state"] == "end" and s[3]["session_id"] in cut_short)]
    kept.sort(key=lambda s: s[0])
    return kept


@dataclass
class FleetResult:
    devices: int = 0
    events: int = 0
    messages: int = 0
    statuses: int = 0
    published_by_school: dict[str, int] = field(default_factory=dict)
    sim_start: float = 0.0
    sim_end: float = 0.0
    real_s: float = 0.0


class Pool:
    """A few MQTT connections publishing for many devices (QoS 1), with back-pressure."""

    def __init__(self, broker: BrokerConfig, size: int, run: str, max_queued: int = 2000) -> None:
        self.clients = []
        for n in range(size):
            c = make_client(broker, f"bbt-sim-{run}-{n}", clean_session=True)
            c.will_set(f"bbt-sim/pool/{n}/status", json.dumps({"online": False, "reason": "lost"}), qos=1)
            c.max_inflight_messages_set(200)
            c.max_queued_messages_set(max_queued)
            c.connect(broker.host, broker.port, broker.keepalive)
            c.loop_start()
            self.clients.append(c)
        self.last: list = [None] * size

    def publish(self, n: int, topic: str, payload: bytes, retain: bool = False) -> None:
        import paho.mqtt.client as mqtt

        c = self.clients[n % len(self.clients)]
        while True:
            info = c.publish(topic, payload, qos=1, retain=retain)
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                break
            time.sleep(0.005)  # the broker is behind: wait rather than buffer without bound
        self.last[n % len(self.clients)] = info

    def drain(self, timeout: float = 120) -> bool:
        """Wait until the broker acknowledged everything (True) or timeout."""
        ok = True
        for info in self.last:
            if info is not None:
                info.wait_for_publish(timeout)
                ok = ok and info.is_published()
        return ok

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


class Fleet:
    """Runs the district's day through the broker; ``speed`` simulated seconds per real second (0: flat out)."""

    def __init__(self, spec: FleetSpec, broker: BrokerConfig) -> None:
        self.spec = spec
        self.broker = broker
        self.day = spec.day or last_weekday(date.today())
        self.tz = ZoneInfo(spec.tz)
        self.run = uuid.uuid4().hex[:8]
        self.stop_event = threading.Event()

    def clock_text(self, t: float) -> str:
        return datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d %H:%M")

    def run_day(self, speed: float, progress: Callable[[FleetResult], None] | None = None,
                tick: float = 0.2, flat_out_step: float = 60.0) -> FleetResult:
        """Play the day; each round sends what is due within ``tick`` real seconds (at ``speed`` 0:
        within ``flat_out_step`` simulated seconds, i.e. events that close together share a message)."""
        spec = self.spec
        plans = plan_schools(spec, self.day)
        rng = random.Random(spec.seed + 1)
        sims = [DeviceSim(p.school, p.device, self.run) for p in plans]
        gens = [device_day(p, spec, random.Random(rng.random())) for p in plans]
        heap: list[tuple[float, int, Step]] = []
        for i, g in enumerate(gens):
            first = next(g, None)
            if first is not None:
                heap.append((first[0], i, first))
        heapq.heapify(heap)
        res = FleetResult(devices=len(sims), sim_start=heap[0][0] if heap else 0.0)
        pool = Pool(self.broker, spec.connections or max(1, (len(sims) + 499) // 500), self.run)
        started = time.monotonic()
        try:
            while heap and not self.stop_event.is_set():
                horizon = heap[0][0] + (tick * speed if speed else flat_out_step)
                if speed:
                    wait = started + (heap[0][0] - res.sim_start) / speed - time.monotonic()
                    if wait > 0 and self.stop_event.wait(wait):
                        break
                due: dict[int, list[Step]] = {}
                while heap and heap[0][0] <= horizon:
                    _, i, step = heapq.heappop(heap)
                    due.setdefault(i, []).append(step)
                    nxt = next(gens[i], None)
                    if nxt is not None:
                        heapq.heappush(heap, (nxt[0], i, nxt))
                for i, steps in due.items():
                    self._send(pool, i, sims[i], steps, res)
                res.sim_end = horizon
                if progress:
                    progress(res)
            pool.drain()
        finally:
            pool.close()
        res.real_s = time.monotonic() - started
        return res

    def _send(self, pool: Pool, i: int, sim: DeviceSim, steps: list[Step], res: FleetResult) -> None:
        events: list[dict] = []

        def flush() -> None:
            for k in range(0, len(events), 500):
                pool.publish(i, sim.events_topic, protocol.dumps(events[k:k + 500]))
                res.messages += 1
            res.events += len(events)
            res.published_by_school[sim.school] = res.published_by_school.get(sim.school, 0) + len(events)
            events.clear()

        for t, kind, what, data in steps:
            if kind == "status":
                flush()  # keep a device's status and events in order
                if what == "lost":
                    sim.in_use = False
                body = protocol.make_status(what != "lost" and what != "shutdown", what,
                                            datetime.fromtimestamp(round(t), self.tz), data.get("boot_id", ""),
                                            f"sim-{__version__}")
                pool.publish(i, sim.status_topic, protocol.dumps(body), retain=True)
                res.statuses += 1
            else:
                events.append(sim.event(t, what, self._data(data), self.tz))
        flush()

    def _data(self, data: dict) -> dict:
        out = dict(data)
        for key in ("boot_time", "start", "end"):
            if isinstance(out.get(key), float):
                out[key] = datetime.fromtimestamp(round(out[key]), self.tz).isoformat()
        return out


def write_school_data(spec: FleetSpec, day: date, folder: Path) -> list[Path]:
    """The CSV files a school would import (devices, bell, that weekday's timetable), one folder per school."""
    written = []
    by_school: dict[str, list[DeviceDay]] = {}
    for p in plan_schools(spec, day):
        by_school.setdefault(p.school, []).append(p)
    for school, plans in by_school.items():
        d = folder / school
        d.mkdir(parents=True, exist_ok=True)
        tables: dict[str, tuple[list[str], list[list[Any]]]] = {
            "devices": (["device", "class"], [[p.device, p.klass] for p in plans]),
            "bell": (["period", "start", "end"], [[n + 1, s, e] for n, (s, e) in enumerate(BELL)]),
            "timetable": (["class", "weekday", "period", "teacher", "subject"],
                          [[p.klass, day.isoweekday(), period, teacher, "课程"]
                           for p in plans for period, teacher in p.timetable]),
        }
        for kind, (cols, rows) in tables.items():
            path = d / f"{kind}.csv"
            with path.open("w", encoding="utf-8", newline="") as f:
                w = csv.writer(f)
                w.writerow(cols)
                w.writerows(rows)
            written.append(path)
    return written
