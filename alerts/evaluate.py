"""One evaluation pass: read plain data from the store, run the rules, apply the differences.

Runs on one collector at a time (``AlertEngine.gate``); every write of a pass for one school
happens in one transaction.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from alerts import config, faultlog, protection, routing, rules, store
from alerts.rules import Candidate, Device
from alerts.schedule import Schedule, term_cutoff
from collector.db import Database, Row
from collector.devices import policy
from collector.devices.projectors import school_projectors
from collector.devices.registry import DEFAULT_HEARTBEAT_S, effective_online, school_settings, school_tz

log = logging.getLogger(__name__)
EVENT_TYPES = ("software", "drift", "inventory", "power", "usb")
CURSOR_OVERLAP_S = 10.0


@dataclass
class PassResult:
    fired: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    notices: int = 0


def load_devices(db: Database, school: str, now: float) -> list[Device]:
    hb = float(school_settings(db, school).get("heartbeat_s", DEFAULT_HEARTBEAT_S))
    rows = db.query("SELECT * FROM devices WHERE school = ?", (school,))
    return [Device(school, r["device"], r["class"], r["room"], r["building"], r["floor"],
                   effective_online(r, now, hb), r["status_reason"], r["last_seen"]) for r in rows]


def state_candidates(db: Database, school: str, now: float, sched: Schedule, cfg: dict[str, Any],
                     devices: list[Device]) -> list[Candidate]:
    r = cfg["rules"]
    by_id = {d.device: d for d in devices}
    out: list[Candidate] = []
    if r["fault"].get("enabled"):
        faults = db.query("SELECT * FROM faults WHERE school = ? AND cleared_t IS NULL", (school,))
        out += rules.fault_alerts(faults, by_id)
    if r["offline_in_lesson"].get("enabled"):
        out += rules.offline_in_lesson(devices, sched.lessons_now(school, now), r["offline_in_lesson"])
    if r["floor_offline"].get("enabled"):
        out += rules.floor_offline(devices, r["floor_offline"], now)
    if r["building_offline"].get("enabled"):
        out += rules.building_offline(devices, r["building_offline"], now)
    if r["left_on"].get("enabled"):
        local = datetime.fromtimestamp(now, school_tz(db, school))
        out += rules.left_on(devices, sched.last_lesson_end(school, now), local, r["left_on"])
    out += _projector_candidates(db, school, now, sched, r, by_id)
    if r["agent_silent"].get("enabled"):
        cutoff = term_cutoff(sched, school, now, float(r["agent_silent"].get("after_h", 24)), school_tz(db, school))
        out += rules.agent_silent(devices, cutoff, r["agent_silent"])
    return out


def _projector_candidates(db: Database, school: str, now: float, sched: Schedule, r: dict[str, Any],
                          by_id: dict[str, Device]) -> list[Candidate]:
    on, lamp = r["projector_left_on"], r["projector_lamp"]
    if not (on.get("enabled") or lamp.get("enabled")):
        return []
    states = school_projectors(db, school)
    out: list[Candidate] = []
    if states and on.get("enabled"):
        local = datetime.fromtimestamp(now, school_tz(db, school))
        out += rules.projector_left_on(by_id, states, sched.last_lesson_end(school, now), local, on)
    if states and lamp.get("enabled"):
        out += rules.projector_lamp(by_id, states, lamp, now)
    return out


class EventScanner:
    """New software/drift/inventory/power events since the last pass (cursor on ``received``)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str, str], float] = {}

    def scan(self, db: Database, now: float) -> dict[str, list[Row]]:
        cursor = store.kv_get(db, "event_cursor")
        if cursor is None:  # first start: alert on what happens from now on, not on history
            store.kv_set(db, "event_cursor", repr(now))
            return {}
        since = float(cursor) - CURSOR_OVERLAP_S
        marks = ",".join("?" for _ in EVENT_TYPES)
        rows = db.query(f"SELECT school, device, id, type, t, received, data FROM events WHERE received > ? "
                        f"AND type IN ({marks}) ORDER BY received", (since, *EVENT_TYPES))
        out: dict[str, list[Row]] = {}
        for r in rows:
            key = (r["school"], r["device"], r["id"])
            if key in self.seen:
                continue
            self.seen[key] = r["received"]
            out.setdefault(r["school"], []).append(r)
        if rows:
            store.kv_set(db, "event_cursor", repr(max(float(cursor), max(r["received"] for r in rows))))
        self.seen = {k: v for k, v in self.seen.items() if v > since - CURSOR_OVERLAP_S}
        return out


def event_candidates(db: Database, school: str, events: list[Row], sched: Schedule, cfg: dict[str, Any],
                     devices: list[Device]) -> list[Candidate]:
    r = cfg["rules"]
    by_id = {d.device: d for d in devices}
    out: list[Candidate] = []
    usb_policy: dict[str, Any] | None = None
    for e in events:
        dev = by_id.get(e["device"]) or Device(school, e["device"])
        data = json.loads(e["data"])
        t = float(e["t"])
        if e["type"] == "software" and r["software"].get("enabled"):
            in_lesson = bool(dev.klass) and dev.klass in sched.lessons_now(school, t)
            out.append(rules.software_alert(dev, data, t, in_lesson, r["software"]))
        elif e["type"] == "usb" and data.get("action") == "inserted" and r["usb"].get("enabled"):
            if usb_policy is None:
                usb_policy = policy.usb_policy(db, school)
            in_lesson = bool(dev.klass) and dev.klass in sched.lessons_now(school, t)
            c = rules.usb_alert(dev, data, t, in_lesson, usb_policy, r["usb"])
            if c is not None:
                out.append(c)
        elif e["type"] == "drift" and r["drift"].get("enabled"):
            out.append(rules.drift_alert(dev, data, t, r["drift"]))
        elif e["type"] == "inventory":
            out += _inventory_candidates(db, dev, e["id"], data, t, r)
        elif e["type"] == "power" and data.get("state") == "on" and data.get("clean") is False \
                and r["unclean_shutdowns"].get("enabled"):
            opts = r["unclean_shutdowns"]
            since = t - float(opts.get("days", 7)) * 86400
            rows = db.query("SELECT t, data FROM events WHERE school = ? AND device = ? AND type = 'power' "
                            "AND t >= ? AND t <= ?", (school, e["device"], since, t))
            times = [float(x["t"]) for x in rows if json.loads(x["data"]).get("clean") is False
                     and json.loads(x["data"]).get("state") == "on"]
            c = rules.unclean_shutdowns(dev, times, t, opts)
            if c is not None:
                out.append(c)
    return out


def _inventory_candidates(db: Database, dev: Device, event_id: str, data: dict[str, Any], t: float,
                          r: dict[str, Any]) -> list[Candidate]:
    """New software against the previous inventory; a swapped machine (serial or board changed), which the
    collector recorded as drift when it stored this inventory (collector.school.assets.sync_inventory)."""
    out: list[Candidate] = []
    if r["new_software"].get("enabled"):
        prev = db.query("SELECT data FROM events WHERE school = ? AND device = ? AND type = 'inventory' "
                        "AND t < ? ORDER BY t DESC LIMIT 1", (dev.school, dev.device, t))
        out += rules.new_software(dev, json.loads(prev[0]["data"]) if prev else None, data, t, r["new_software"])
    if r["drift"].get("enabled"):
        swapped = db.query("SELECT field, old_value, new_value FROM drift WHERE school = ? AND device = ? "
                           "AND event_id = ? ORDER BY id", (dev.school, dev.device, event_id))
        out += [rules.drift_alert(dev, {"field": s["field"], "old": s["old_value"], "new": s["new_value"]}, t,
                                  r["drift"]) for s in swapped]
    return out


def week_end_candidates(db: Database, school: str, now: float, cfg: dict[str, Any],
                        weekly: Callable[[Database, str, str, float], dict[str, Any]]
                        ) -> list[Candidate]:
    """Once per ISO week, from Sunday ``at`` (default 18:00) on: teachers and classes below the threshold."""
    opts = cfg["rules"]["usage_below"]
    if not opts.get("enabled"):
        return []
    local = datetime.fromtimestamp(now, school_tz(db, school))
    iso = local.isocalendar()
    at = str(opts.get("at", "18:00"))
    ready = iso[2] == 7 and local.strftime("%H:%M") >= at
    week = f"{iso[0]}-W{iso[1]:02d}" if ready else _previous_week(local)
    key = f"usage_week|{school}"
    if store.kv_get(db, key) == week or (not ready and store.kv_get(db, key) is None):
        if not ready and store.kv_get(db, key) is None:
            store.kv_set(db, key, week)  # first start: from the current week on
        return []
    store.kv_set(db, key, week)
    below = weekly(db, school, week, now)
    threshold = float(below.get("threshold") or 0.0)
    return (rules.usage_below(school, week, below.get("teachers", []), "teacher", now, opts, threshold)
            + rules.usage_below(school, week, below.get("classes", []), "class", now, opts, threshold))


def outside_candidates(db: Database, school: str, now: float, cfg: dict[str, Any],
                       devices: list[Device]) -> list[Candidate]:
    """课外使用 today (rule ``outside_use``, off by default), looked at every ``check_every_min``."""
    opts = cfg["rules"]["outside_use"]
    if not opts.get("enabled"):
        return []
    key = f"outside_use_check|{school}"
    last = store.kv_get(db, key)
    if last is not None and now - float(last) < float(opts.get("check_every_min", 10)) * 60:
        return []
    store.kv_set(db, key, repr(now))
    from collector.rates.outside_use import day_rows

    rows = day_rows(db, school, datetime.fromtimestamp(now, school_tz(db, school)).date(), now)
    return rules.outside_use(rows, {d.device: d for d in devices}, now, opts)


def _previous_week(local: datetime) -> str:
    iso = (local - timedelta(days=7)).isocalendar()
    return f"{iso[0]}-W{iso[1]:02d}"


def default_weekly(db: Database, school: str, week: str, now: float) -> dict[str, Any]:
    from collector.rates.usage import below_threshold

    return below_threshold(db, school, week, now)


def labels_of(a: Row) -> dict[str, Any]:
    return {k: a.get(k) for k in ("school", "kind", "code", "severity", "building", "floor", "class", "device",
                                  "fingerprint")}


def _notify_new(db: Database, a: Row, cfg: dict[str, Any], now: float) -> int:
    n = 0
    labels = labels_of(a)
    for route in routing.routes_for(labels, cfg):
        gk = routing.group_key(labels, route.group_by)
        for ch in route.channels:
            store.add_notice(db, a["id"], a["school"], ch, "firing", gk, now + route.group_wait_s, now)
            n += 1
    return n


def _notify_resolved(db: Database, a: Row, cfg: dict[str, Any], now: float) -> int:
    if not cfg.get("send_resolved", True):
        return 0
    labels = labels_of(a)
    routes = routing.routes_for(labels, cfg)
    wait = routes[0].group_wait_s if routes else float(cfg.get("group_wait_s", 30))
    gk = routing.group_key(labels, routes[0].group_by if routes else cfg.get("group_by", []))
    rows = db.query("SELECT DISTINCT channel FROM alert_notices WHERE alert_id = ? AND status IN ('sent', 'pending') "
                    "AND kind IN ('firing', 'repeat', 'escalation')", (a["id"],))
    for r in rows:
        store.add_notice(db, a["id"], a["school"], r["channel"], "resolved", gk, now + wait, now)
    return len(rows)


def _follow_up(db: Database, a: Row, cfg: dict[str, Any], now: float) -> int:
    """Escalation when not acknowledged in time; repeats every repeat_interval."""
    if a["state"] != "firing":
        return 0
    n = 0
    labels = labels_of(a)
    for route in routing.routes_for(labels, cfg):
        gk = routing.group_key(labels, route.group_by)
        level = int(a["escalation"])
        for i, step in enumerate(route.escalate):
            if i + 1 > level and now >= a["opened"] + float(step["after_min"]) * 60:
                for ch in step.get("channels", []):
                    store.add_notice(db, a["id"], a["school"], ch, "escalation", gk, now, now)
                    n += 1
                level = i + 1
        if level != int(a["escalation"]):
            db.execute("UPDATE alerts SET escalation = ? WHERE id = ?", (level, a["id"]))
        last = a["last_notified"]
        if last is not None and route.repeat_interval_min > 0 and now >= last + route.repeat_interval_min * 60:
            for ch in route.channels:
                store.add_notice(db, a["id"], a["school"], ch, "repeat", gk, now, now)
                n += 1
            db.execute("UPDATE alerts SET last_notified = ? WHERE id = ?", (now, a["id"]))
    return n


def evaluate_school(db: Database, school: str, now: float, sched: Schedule, events: list[Row],
                    weekly: Callable[..., dict[str, Any]] | None = None) -> PassResult:
    cfg = config.load(db, school)
    res = PassResult()
    protection.sync(db, school, cfg["rules"]["protection"])  # opens/clears faults the fault rule alerts on
    devices = load_devices(db, school, now)
    wanted = {c.fingerprint: c for c in state_candidates(db, school, now, sched, cfg, devices)}
    happened = event_candidates(db, school, events, sched, cfg, devices) if events else []
    if weekly is not None:
        happened += week_end_candidates(db, school, now, cfg, weekly)
    happened += outside_candidates(db, school, now, cfg, devices)
    ttl = float(cfg.get("event_ttl_h", 24)) * 3600
    with db.transaction():
        faultlog.sync_tickets(db, school, now)
        current = store.open_alerts(db, school)
        for fp, c in wanted.items():
            if fp in current:
                store.touch(db, current[fp]["id"], c, now, hit=False)
            else:
                res.fired.append(store.fire(db, school, c, now))
        for c in happened:
            if c.fingerprint in current:
                store.touch(db, current[c.fingerprint]["id"], c, now, hit=True)
            elif c.fingerprint not in wanted:
                res.fired.append(store.fire(db, school, c, now))
                wanted[c.fingerprint] = c
        for fp, a in current.items():
            gone = a["mode"] == "state" and fp not in wanted
            expired = a["mode"] == "event" and a["last_seen"] < now - ttl
            if (gone or expired) and store.resolve(db, a["id"], now, "expired" if expired else "cleared"):
                res.resolved.append(a["id"])
        for aid in res.fired:
            row = store.get(db, aid)
            if row is not None:
                res.notices += _notify_new(db, row, cfg, now)
        for aid in res.resolved:
            row = store.get(db, aid)
            if row is not None:
                res.notices += _notify_resolved(db, row, cfg, now)
        for a in store.open_alerts(db, school).values():
            res.notices += _follow_up(db, a, cfg, now)
    return res
