"""The audit log of admin actions and commands sent from the dashboard (no Flask here).

It is the one audit log of bbt (migration 500, ``collector.audit.audit``), so `bbt audit`
shows dashboard actions next to backups and purges. The school and the client address go
into the entry's detail.
"""
from __future__ import annotations

import json
from typing import Any

from collector.audit import audit as write
from collector.audit import audit_entries
from collector.db import Database


def record(db: Database, actor: str, action: str, school: str | None = None, target: str | None = None,
           ip: str | None = None, **detail: Any) -> None:
    """Append one entry. ``detail`` must never hold secrets (passwords, tokens)."""
    extra = {k: v for k, v in (("school", school), ("ip", ip)) if v}
    write(db, action, target, {**extra, **detail}, who=actor)


def recent(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    rows = audit_entries(db, limit)
    for r in rows:
        try:
            r["detail"] = json.loads(r["detail"] or "{}")
        except ValueError:
            r["detail"] = {"text": r["detail"]}
        if not isinstance(r["detail"], dict):
            r["detail"] = {"value": r["detail"]}
        r["school"] = r["detail"].pop("school", None)
        r["ip"] = r["detail"].pop("ip", None)
    return rows
