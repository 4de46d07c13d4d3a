"""Wake-on-LAN switch-on (docs/commands.md "wake"): the collector asks an online agent on each
target's subnet to send the magic packets, since broadcasts do not cross routers; the result is the
target's status arriving (collector.operations.power.results). Also the per-school schedule: before the first
period on school days (collector.lessons.school_calendar: no switch-on on holidays, weekends, vacations).
"""
from __future__ import annotations

import ipaddress
import os
import time
from datetime import date, datetime, timedelta
from typing import Any

from collector.db import Database
from collector.devices import commands, registry
from collector.devices.commands import CommandError
from collector.operations import power

DEFAULT_PORT = 9
WAKE_EXPIRES_S = 300
DEFAULT_MINUTES_BEFORE = 20
Net = ipaddress.IPv4Network


def subnet(ip: str | None, mask: str | None) -> Net | None:
    """The IPv4 network of an address and mask, or None when either is missing or malformed."""
    if not ip or not mask:
        return None
    try:
        return ipaddress.IPv4Network(f"{ip}/{mask}", strict=False)
    except ValueError:
        return None


def plan(devices: list[dict[str, Any]], targets: set[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Pure planning. ``devices``: rows with device, online, net_ip, net_mask, net_mac.
    Returns ({peer: {"macs": [...], "broadcast": "a.b.c.255", "targets": [device...]}},
    {target: why not woken: "already_on" / "no_address" / "no_peer"})."""
    peers: dict[Net, str] = {}
    for d in sorted(devices, key=lambda d: d["device"]):
        net = subnet(d.get("net_ip"), d.get("net_mask"))
        if d["online"] and net is not None and net.prefixlen < 32:
            peers.setdefault(net, d["device"])
    sends: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for d in devices:
        if d["device"] not in targets:
            continue
        net = subnet(d.get("net_ip"), d.get("net_mask"))
        if d["online"]:
            skipped[d["device"]] = "already_on"
        elif net is None or not d.get("net_mac"):
            skipped[d["device"]] = "no_address"
        elif net not in peers:
            skipped[d["device"]] = "no_peer"
        else:
            s = sends.setdefault(peers[net], {"macs": [], "broadcast": str(net.broadcast_address), "targets": []})
            s["macs"].append(d["net_mac"])
            s["targets"].append(d["device"])
    return sends, skipped


def _devices(db: Database, school: str, now: float) -> list[dict[str, Any]]:
    online = {d["device"]: d["online"] for d in registry.list_devices(db, school, now)}
    rows = db.query("SELECT device, net_ip, net_mask, net_mac FROM devices WHERE school = ?", (school,))
    return [{**r, "online": online.get(r["device"], False)} for r in rows]


def create_wake(db: Database, school: str, actor: str, building: str | None = None, floor: str | None = None,
                port: int | None = None, address: str | None = None,
                now: float | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Store a wake action for the PCs in scope and one ``wake`` command per peer; (action id, created).
    ``address`` replaces each subnet's broadcast address (tests: 127.0.0.1); ``port`` defaults to
    BBT_WOL_PORT or 9."""
    now = time.time() if now is None else now
    scoped = [d["device"] for d in power.scope_devices(db, school, building, floor, now)]
    if not scoped:
        raise CommandError(f"no known device in {power.scope_label(building, floor)} of school {school!r}")
    port = int(port or os.environ.get("BBT_WOL_PORT") or DEFAULT_PORT)
    sends, skipped = plan(_devices(db, school, now), set(scoped))
    args_all = {"port": port}
    with db.transaction():
        action_id = power.new_action(db, school, "wake", "wake", args_all, actor, building, floor, now)
        created = []
        for peer, s in sorted(sends.items()):
            args = {"macs": s["macs"], "broadcast": address or s["broadcast"], "port": port}
            c = commands.create(db, "wake", args, [(school, peer)], WAKE_EXPIRES_S, now)[0]
            created.append(c)
            for t in s["targets"]:
                power.add_target(db, action_id, t, "sent", c["command"]["id"], peer)
        for t, why in sorted(skipped.items()):
            power.add_target(db, action_id, t, why)
    return action_id, created


# -- the schedule ---------------------------------------------------------------

def get_schedule(db: Database, school: str) -> dict[str, Any]:
    rows = db.query("SELECT enabled, minutes_before, last_day FROM wake_schedules WHERE school = ?", (school,))
    if not rows:
        return {"enabled": False, "minutes_before": DEFAULT_MINUTES_BEFORE, "last_day": None}
    r = rows[0]
    return {"enabled": bool(r["enabled"]), "minutes_before": int(r["minutes_before"]), "last_day": r["last_day"]}


def set_schedule(db: Database, school: str, enabled: bool, minutes_before: int, who: str) -> None:
    if not 0 <= minutes_before <= 180:
        raise CommandError("minutes before the first period must be 0-180 (开机提前分钟数)")
    db.execute("INSERT INTO wake_schedules (school, enabled, minutes_before, updated, updated_by) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (school) DO UPDATE SET enabled = excluded.enabled, "
               "minutes_before = excluded.minutes_before, updated = excluded.updated, "
               "updated_by = excluded.updated_by", (school, int(enabled), minutes_before, time.time(), who))


def first_period_start(db: Database, school: str, d: date) -> datetime | None:
    """When the first period starts on ``d`` (school time), or None when it is no school day
    (holiday, weekend, vacation, exam) or the school has no bell schedule."""
    from collector.lessons.school_calendar import plan_day
    from collector.lessons.timetable import bell_for
    from collector.rates import usage

    model = usage.load_model(db, school)
    if not plan_day(d, model.overrides, model.terms).teaching:
        return None
    bell = bell_for(model, d)
    if bell is None or not bell.periods:
        return None
    minute = min(start for start, _ in bell.periods.values())
    return datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=model.tz)


def wake_due(now: datetime, first: datetime | None, minutes_before: int, last_day: str | None) -> bool:
    """Pure: switch on now? From ``minutes_before`` before the first period until it starts, once a day."""
    if first is None or last_day == now.date().isoformat():
        return False
    return first - timedelta(minutes=minutes_before) <= now < first


def run_schedules(db: Database, send: Any, now: float | None = None) -> list[str]:
    """The collector's maintenance: every school whose switch-on is due; returns the action ids."""
    now = time.time() if now is None else now
    done = []
    for r in db.query("SELECT school, minutes_before, last_day FROM wake_schedules WHERE enabled = 1"):
        local = datetime.fromtimestamp(now, registry.school_tz(db, r["school"]))
        first = first_period_start(db, r["school"], local.date())
        if not wake_due(local, first, int(r["minutes_before"]), r["last_day"]):
            continue
        db.execute("UPDATE wake_schedules SET last_day = ? WHERE school = ?", (local.date().isoformat(), r["school"]))
        try:
            action_id, created = create_wake(db, r["school"], "schedule", now=now)
        except CommandError:
            continue  # a school without devices
        commands.send_created(db, send, created)
        done.append(action_id)
    return done
