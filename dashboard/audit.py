"""The audit log: who did which admin action or sent which command, when (no Flask here)."""
from __future__ import annotations

import json
import time
from typing import Any

from collector.db import Database


def record(db: Database, actor: str, action: str, school: str | None = None, target: str | None = None,
           ip: str | None = None, **detail: Any) -> None:
    """Append one entry. ``detail`` must never hold secrets (passwords, tokens)."""
    db.execute("INSERT INTO audit_log (t, actor, action, school, target, detail, ip) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (time.time(), actor, action, school, target, json.dumps(detail, ensure_ascii=False, default=str), ip))


def recent(db: Database, limit: int = 200, school: str | None = None) -> list[dict[str, Any]]:
    where, params = ("WHERE school = ? OR school IS NULL", [school]) if school else ("", [])
    rows = db.query(f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit))
    for r in rows:
        r["detail"] = json.loads(r["detail"] or "{}")
    return rows
