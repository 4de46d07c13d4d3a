"""Projectors and panels: the latest PJLink state per device (from `projector` events, protocol v1.1)
and the projector address each classroom's agent is told (devices import column `projector`).

Applied inside the ingest transaction for newly stored events; read by the device page, the API
and the alert rules (alerts.rules.projector_*).
"""
from __future__ import annotations

import json
from typing import Any

from collector.db import Database
from collector.devices.ingest import EventRow


def apply_projector(db: Database, row: EventRow) -> None:
    """Keep the newest state per device (an older event replayed from the outbox changes nothing)."""
    d = row.data
    old = db.query("SELECT t FROM projector_state WHERE school = ? AND device = ?", (row.school, row.device))
    if old and old[0]["t"] > row.t:
        return
    errors = d.get("errors")
    values = (str(d.get("address", "")), 1 if d.get("reachable") else 0, d.get("power"), d.get("input"),
              d.get("lamp_hours"), json.dumps(errors, ensure_ascii=False) if isinstance(errors, dict) else None,
              d.get("error"), row.t, row.received)
    if old:
        db.execute("UPDATE projector_state SET address = ?, reachable = ?, power = ?, input = ?, "
                   "lamp_hours = COALESCE(?, lamp_hours), errors = ?, error = ?, t = ?, received = ? "
                   "WHERE school = ? AND device = ?", (*values, row.school, row.device))
    else:
        db.execute("INSERT INTO projector_state (address, reachable, power, input, lamp_hours, errors, error, t, "
                   "received, school, device) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (*values, row.school, row.device))


def _row(r: Any) -> dict[str, Any]:
    return {"device": r["device"], "address": r["address"], "reachable": bool(r["reachable"]),
            "power": r["power"], "input": r["input"], "lamp_hours": r["lamp_hours"],
            "errors": json.loads(r["errors"]) if r["errors"] else {}, "error": r["error"], "t": r["t"]}


def projector_state(db: Database, school: str, device: str) -> dict[str, Any] | None:
    """The device's projector as last reported, or None (no projector, or never reported)."""
    rows = db.query("SELECT * FROM projector_state WHERE school = ? AND device = ?", (school, device))
    return _row(rows[0]) if rows else None


def school_projectors(db: Database, school: str) -> list[dict[str, Any]]:
    return [_row(r) for r in db.query("SELECT * FROM projector_state WHERE school = ? ORDER BY device", (school,))]


def projector_addresses(db: Database, school: str) -> dict[str, str]:
    """{device: address} for the policy's `projectors` (each classroom's agent polls its own)."""
    return {r["device"]: r["projector"] for r in db.query(
        "SELECT device, projector FROM devices WHERE school = ? AND projector IS NOT NULL AND projector <> '' "
        "ORDER BY device", (school,))}
