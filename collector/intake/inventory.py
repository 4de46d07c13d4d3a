"""Inventory snapshots, what changed between them (software installed / removed / updated),
and drift history — applied inside the ingest transaction for newly stored events."""
from __future__ import annotations

import json
from typing import Any

from collector.db import Database
from collector.devices.ingest import EventRow
from collector.school.assets import sync_inventory


def software_map(items: Any) -> dict[str, dict[str, str | None]]:
    """{normalised name: {name, version, publisher}} from an inventory's software list."""
    out: dict[str, dict[str, str | None]] = {}
    if not isinstance(items, list):
        return out
    for it in items:
        if isinstance(it, str):
            it = {"name": it}
        if not isinstance(it, dict) or not isinstance(it.get("name"), str) or not it["name"].strip():
            continue
        out[it["name"].strip().casefold()] = {
            "name": it["name"].strip(), "version": _text(it.get("version")), "publisher": _text(it.get("publisher"))}
    return out


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


Change = tuple[str, str, str | None, str | None, str | None]


def software_diff(old: dict[str, dict[str, str | None]], new: dict[str, dict[str, str | None]]) -> list[Change]:
    """(change, name, version, old_version, publisher) for installed / removed / updated programs."""
    changes: list[Change] = []
    for key in sorted(new.keys() - old.keys()):
        n = new[key]
        changes.append(("installed", n["name"] or key, n["version"], None, n["publisher"]))
    for key in sorted(old.keys() - new.keys()):
        o = old[key]
        changes.append(("removed", o["name"] or key, None, o["version"], o["publisher"]))
    for key in sorted(new.keys() & old.keys()):
        n, o = new[key], old[key]
        if n["version"] != o["version"]:
            changes.append(("updated", n["name"] or key, n["version"], o["version"], n["publisher"]))
    return changes


def apply_inventory(db: Database, row: EventRow, received: float) -> int:
    """Store a snapshot; when it is the newest, record changes against the previous newest.
    Returns the number of software changes recorded (0 for a device's first inventory)."""
    d = row.data
    sw = software_map(d.get("software"))
    prev = db.query("SELECT data FROM inventories WHERE school = ? AND device = ? ORDER BY t DESC, id DESC LIMIT 1",
                    (row.school, row.device))
    latest_t = db.query("SELECT inventory_t FROM devices WHERE school = ? AND device = ?",
                        (row.school, row.device))
    is_newest = not latest_t or latest_t[0]["inventory_t"] is None or row.t >= latest_t[0]["inventory_t"]
    db.execute("INSERT INTO inventories (school, device, event_id, t, received, hostname, os, software_count, data) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row.school, row.device, row.id, row.t, received, _text(d.get("hostname")), _text(d.get("os")),
                len(sw), row.data_text))
    if not is_newest:
        return 0
    db.execute("UPDATE devices SET inventory_t = ?, hostname = ? WHERE school = ? AND device = ?",
               (row.t, _text(d.get("hostname")), row.school, row.device))
    if any(isinstance(d.get(k), str) and d[k] for k in ("ip", "mac")):  # its network (wake-on-LAN)
        db.execute("UPDATE devices SET net_ip = ?, net_mask = ?, net_mac = ? WHERE school = ? AND device = ?",
                   (_text(d.get("ip")) or None, _text(d.get("netmask")) or None,
                    (_text(d.get("mac")) or "").lower() or None, row.school, row.device))
    sync_inventory(db, row.school, row.device, d, row.id, row.t)  # the PC's ledger row; a swapped board: drift
    if not prev:
        return 0
    old = software_map(json.loads(prev[0]["data"]).get("software"))
    changes = software_diff(old, sw)
    db.executemany("INSERT INTO software_changes (school, device, t, change, name, version, old_version, publisher, "
                   "event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(row.school, row.device, row.t, *c, row.id) for c in changes])
    return len(changes)


def apply_drift(db: Database, row: EventRow) -> None:
    d = row.data
    db.execute("INSERT INTO drift (school, device, t, field, old_value, new_value, event_id) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)",
               (row.school, row.device, row.t, d["field"], _jsontext(d.get("old")), _jsontext(d.get("new")), row.id))
    if d["field"] == "hostname" and isinstance(d.get("new"), str):
        db.execute("UPDATE devices SET hostname = ? WHERE school = ? AND device = ?",
                   (d["new"], row.school, row.device))
    if d["field"] in ("ip", "mac") and isinstance(d.get("new"), str) and d["new"]:
        col = "net_ip" if d["field"] == "ip" else "net_mac"
        db.execute(f"UPDATE devices SET {col} = ? WHERE school = ? AND device = ?",
                   (d["new"].lower(), row.school, row.device))


def _jsontext(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=True)


def latest_inventory(db: Database, school: str, device: str) -> dict[str, Any] | None:
    rows = db.query("SELECT event_id, t, hostname, os, software_count, data FROM inventories "
                    "WHERE school = ? AND device = ? ORDER BY t DESC, id DESC LIMIT 1", (school, device))
    if not rows:
        return None
    r = rows[0]
    return {**{k: r[k] for k in ("event_id", "t", "hostname", "os", "software_count")}, "data": json.loads(r["data"])}


def software_changes(db: Database, school: str, device: str | None = None, since: float | None = None,
                     limit: int = 500) -> list[dict[str, Any]]:
    where, params = ["school = ?"], [school]
    if device:
        where.append("device = ?")
        params.append(device)
    return _software_changes(db, where, params, since, limit)


def _software_changes(db: Database, where: list[str], params: list[Any], since: float | None,
                      limit: int) -> list[dict[str, Any]]:
    if since is not None:
        where.append("t >= ?")
        params.append(since)
    return db.query(f"SELECT device, t, change, name, version, old_version, publisher, event_id FROM software_changes "
                    f"WHERE {' AND '.join(where)} ORDER BY t DESC, id DESC LIMIT ?", (*params, limit))


def drift_history(db: Database, school: str, device: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    where, params = ["school = ?"], [school]
    if device:
        where.append("device = ?")
        params.append(device)
    return db.query(f"SELECT device, t, field, old_value, new_value, event_id FROM drift WHERE {' AND '.join(where)} "
                    f"ORDER BY t DESC, id DESC LIMIT ?", (*params, limit))


def device_detail(db: Database, school: str, device: str, now: float | None = None) -> dict[str, Any] | None:
    """Everything the registry knows about one device (for the dashboard's device page): its state as in
    registry.list_devices, the latest inventory, recent software changes, drift history, recent commands."""
    from collector.devices import registry

    state = next((d for d in registry.list_devices(db, school, now) if d["device"] == device), None)
    if state is None:
        return None
    commands = db.query("SELECT id, kind, args, issued, expires, state, acked, error FROM commands "
                        "WHERE school = ? AND device = ? ORDER BY issued DESC LIMIT 20", (school, device))
    return {**state, "inventory": latest_inventory(db, school, device),
            "software_changes": software_changes(db, school, device, limit=100),
            "drift": drift_history(db, school, device, limit=100), "commands": commands}
