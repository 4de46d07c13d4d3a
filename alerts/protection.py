"""Protection faults (病毒防护, 安全补丁) in the fault register: from each device's newest
``protection`` state (collector.intake.protection) the faults ``virus``, ``av_off``, ``av_outdated`` and
``patches_pending`` are opened and cleared (source ``protection``), so they get a register ticket
and an alert through the ``fault`` rule like any fault, and clear when a later report is clean.

Only states stored since the last look are read, unless the rule's options changed (then all).
"""
from __future__ import annotations

import json
from typing import Any

from alerts import store
from collector.db import Database
from collector.intake import protection
from collector.intake.store import close_fault, open_fault

SOURCE = "protection"


def sync(db: Database, school: str, opts: dict[str, Any]) -> tuple[int, int]:
    """Open and clear the school's protection faults; returns (opened, cleared). One transaction."""
    key = f"protection_sync|{school}"
    enabled = bool(opts.get("enabled", True))
    mark = json.dumps({k: v for k, v in sorted(opts.items())}, sort_keys=True, default=str)
    saved = json.loads(store.kv_get(db, key) or "{}")
    since = saved.get("received") if saved.get("opts") == mark else None
    opened = cleared = 0
    rows = protection.states(db, school, since)
    if not rows:
        return 0, 0
    with db.transaction():
        open_now = {(r["device"], r["code"]) for r in db.query(
            "SELECT device, code FROM faults WHERE school = ? AND source = ? AND cleared_t IS NULL", (school, SOURCE))}
        for device, st in sorted(rows.items()):
            found = {p.code: p for p in protection.problems(st["data"], st["t"], opts)} if enabled else {}
            for code in protection.CODES:
                if code in found and (device, code) not in open_now:
                    p = found[code]
                    opened += open_fault(db, school, device, code, p.severity, SOURCE, p.detail, st["t"]) is not None
                elif code not in found and (device, code) in open_now:
                    cleared += close_fault(db, school, device, code, st["t"])
        store.kv_set(db, key, json.dumps({"received": max(s["received"] for s in rows.values()), "opts": mark}))
    return opened, cleared

