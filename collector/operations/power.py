"""Group power actions (docs/commands.md "Group commands"): one command to every online PC of a
building, a floor or the whole school, 雷雨关机, and their per-PC results and tally.

A group action is stored in ``power_actions``; each PC it concerned in ``power_targets``, with the
command sent to it (state from the ``commands`` table: acked, failed = refused, expired = no answer)
or ``offline`` (nothing sent: a shutdown queued for a PC that is off would switch it off when it
is next switched on). Wake-on-LAN actions (collector.operations.wake) use the same tables.
"""
from __future__ import annotations

import json
import secrets
import time
from typing import Any

from collector.db import Database
from collector.devices import commands, registry
from collector.devices.commands import CommandError

GROUP_KINDS = ("shutdown", "message", "cancel_shutdown")
GROUP_EXPIRES_S = 600  # a group command not executed within 10 minutes is not executed at all
STORM_IDLE_DELAY_S = 60
STORM_IN_USE_DELAY_S = 600
STORM_TEXT = "雷雨天气，应立即切断设备电源。请保存文件，本机将自动关机。"
# results: what the page shows per PC
RESULTS = ("waiting", "acked", "packet_sent", "refused",
           "no_answer", "offline", "online", "no_peer", "no_address", "already_on")


def scope_label(building: str | None, floor: str | None) -> str:
    if building and floor:
        return f"{building} {floor}"
    return building or "全校"


def scope_devices(db: Database, school: str, building: str | None = None,
                  floor: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
    """Every device of the school in the building (and floor), with online / in_use as the registry
    sees them. A floor needs its building (floors are named per building, e.g. 1楼)."""
    if floor and not building:
        raise CommandError("choose the building of the floor (楼层属于某栋楼)")
    rows = registry.list_devices(db, school, now)
    return [d for d in rows if (not building or d["building"] == building) and (not floor or d["floor"] == floor)]


def buildings(db: Database, school: str) -> dict[str, list[str]]:
    """{building: [floors]} of the school's devices (for the page's choices)."""
    out: dict[str, list[str]] = {}
    for r in db.query("SELECT DISTINCT building, floor FROM devices WHERE school = ? AND building IS NOT NULL "
                      "ORDER BY building, floor", (school,)):
        floors = out.setdefault(r["building"], [])
        if r["floor"] and r["floor"] not in floors:
            floors.append(r["floor"])
    return out


def storm_args(text: str | None = None) -> dict[str, Any]:
    """雷雨关机: idle PCs off after a minute, PCs in use after a 10-minute countdown (agent decides)."""
    return {"delay_s": STORM_IDLE_DELAY_S, "in_use_delay_s": STORM_IN_USE_DELAY_S, "text": text or STORM_TEXT}


def new_action(db: Database, school: str, action: str, kind: str, args: dict[str, Any], actor: str,
               building: str | None, floor: str | None, now: float) -> str:
    action_id = f"p-{secrets.token_hex(8)}"
    db.execute("INSERT INTO power_actions (id, school, action, kind, building, floor, args, created, actor) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (action_id, school, action, kind, building, floor, json.dumps(args, ensure_ascii=False), now, actor))
    return action_id


def add_target(db: Database, action_id: str, device: str, state: str, command_id: str | None = None,
               peer: str | None = None, in_use: bool = False) -> None:
    db.execute("INSERT INTO power_targets (action_id, device, command_id, state, peer, in_use) "
               "VALUES (?, ?, ?, ?, ?, ?)", (action_id, device, command_id, state, peer, int(in_use)))


def create_group(db: Database, school: str, kind: str, args: dict[str, Any], actor: str,
                 building: str | None = None, floor: str | None = None, action: str = "command",
                 now: float | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Store a group action and one command per online PC in scope (all or nothing). Returns the action
    id and the created commands (to publish: dashboard.sending / collector.devices.commands.send_created)."""
    if kind not in GROUP_KINDS:
        raise CommandError(f"a group command is one of {', '.join(GROUP_KINDS)}, not {kind!r}")
    now = time.time() if now is None else now
    devices = scope_devices(db, school, building, floor, now)
    if not devices:
        raise CommandError(f"no known device in {scope_label(building, floor)} of school {school!r}")
    online = [d for d in devices if d["online"]]
    with db.transaction():
        created = commands.create(db, kind, args, [(school, d["device"]) for d in online], GROUP_EXPIRES_S,
                                  now) if online else []
        action_id = new_action(db, school, action, kind, args, actor, building, floor, now)
        by_device = {c["device"]: c["command"]["id"] for c in created}
        for d in devices:
            add_target(db, action_id, d["device"], "sent" if d["online"] else "offline", by_device.get(d["device"]),
                       in_use=d["in_use"])
    return action_id, created


def get_action(db: Database, action_id: str) -> dict[str, Any] | None:
    rows = db.query("SELECT * FROM power_actions WHERE id = ?", (action_id,))
    if not rows:
        return None
    a = dict(rows[0])
    a["args"] = json.loads(a["args"])
    a["scope"] = scope_label(a["building"], a["floor"])
    return a


def _result(t: dict[str, Any], action: dict[str, Any]) -> str:
    if t["state"] != "sent":
        return str(t["state"])  # offline / no_peer / no_address / already_on
    if action["action"] == "wake" and t["status_online"] and (t["status_t"] or 0) >= action["created"]:
        return "online"  # the target switched on
    acked = "packet_sent" if action["action"] == "wake" else "acked"  # wake: sent, the PC not on yet
    return {"acked": acked, "failed": "refused", "expired": "no_answer"}.get(t["cmd_state"] or "", "waiting")


def results(db: Database, action_id: str) -> dict[str, Any] | None:
    """The action, one row per PC (device, class, room, result, error, peer, in_use) and the tally."""
    action = get_action(db, action_id)
    if action is None:
        return None
    commands.expire(db)
    rows = db.query(
        "SELECT t.device, t.command_id, t.state, t.peer, t.in_use, c.state AS cmd_state, c.error, c.acked, "
        "d.class, d.room, d.building, d.floor, d.online AS status_online, d.status_t FROM power_targets t "
        "LEFT JOIN commands c ON c.id = t.command_id "
        "LEFT JOIN devices d ON d.school = ? AND d.device = t.device "
        "WHERE t.action_id = ? ORDER BY d.building, d.floor, d.room, t.device", (action["school"], action_id))
    out, tally = [], {k: 0 for k in RESULTS}
    for r in rows:
        res = _result(r, action)
        tally[res] += 1
        out.append({"device": r["device"], "class": r["class"], "room": r["room"], "result": res,
                    "error": r["error"] if res == "refused" else None, "peer": r["peer"],
                    "in_use": bool(r["in_use"])})
    done = tally["waiting"] == 0 and tally["packet_sent"] == 0
    return {"action": action, "targets": out, "tally": {k: v for k, v in tally.items() if v}, "total": len(out),
            "done": done}


def recent(db: Database, school: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = db.query("SELECT id, action, kind, building, floor, created, actor FROM power_actions WHERE school = ? "
                    "ORDER BY created DESC, id LIMIT ?", (school, limit))
    for r in rows:
        r["scope"] = scope_label(r["building"], r["floor"])
    return rows
