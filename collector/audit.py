"""The one audit log of bbt (migration 500): who did what to which target, and when.

Every area writes it (enrolment, credentials, lesson marks, fault reviews, backups, purges, the dashboard's
admin pages); ``audit_entries`` reads it back for `bbt audit` and the admin page."""
from __future__ import annotations

import getpass
import json
import time
from typing import Any

from collector.db import Database


def actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name on some service accounts
        return "unknown"


def audit(db: Database, action: str, target: str | None, detail: dict[str, Any], who: str | None = None,
          now: float | None = None) -> None:
    db.execute("INSERT INTO audit (t, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
               (now or time.time(), who or actor(), action, target, json.dumps(detail, ensure_ascii=False)))


def audit_entries(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """The latest ``limit`` entries of the audit log, newest first (``detail`` as written: JSON text)."""
    return db.query("SELECT id, t, actor, action, target, detail FROM audit ORDER BY t DESC, id DESC LIMIT ?",
                    (limit,))
