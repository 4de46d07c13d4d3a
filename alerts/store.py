"""Alert rows: fire, touch, acknowledge, resolve; notices; silences; the signing secret."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from typing import Any

from alerts.rules import Candidate
from collector.db import Database, Row, first
from common.errors import BbtError

OPEN = ("firing", "acknowledged")


class AlertError(BbtError, ValueError):
    pass


def open_alerts(db: Database, school: str) -> dict[str, Row]:
    rows = db.query("SELECT * FROM alerts WHERE school = ? AND state IN ('firing', 'acknowledged')", (school,))
    return {r["fingerprint"]: r for r in rows}


def fire(db: Database, school: str, c: Candidate, now: float) -> int:
    lab = c.labels
    db.execute("INSERT INTO alerts (school, fingerprint, kind, code, severity, device, building, floor, room, class, "
               "subject, detail, mode, state, opened, last_seen, fault_id) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'firing', ?, ?, ?)",
               (school, c.fingerprint, c.kind, c.code, c.severity, lab.get("device"), lab.get("building"),
                lab.get("floor"), lab.get("room"), lab.get("class"), c.subject, c.detail, c.mode,
                min(c.started, now), now, c.fault_id))
    return int(db.query("SELECT MAX(id) AS id FROM alerts WHERE school = ? AND fingerprint = ?",
                        (school, c.fingerprint))[0]["id"])


def touch(db: Database, alert_id: int, c: Candidate, now: float, hit: bool) -> None:
    db.execute("UPDATE alerts SET last_seen = ?, subject = ?, severity = ?, hits = hits + ? WHERE id = ?",
               (now, c.subject, c.severity, int(hit), alert_id))


def resolve(db: Database, alert_id: int, now: float, reason: str) -> bool:
    return bool(db.execute("UPDATE alerts SET state = 'resolved', resolved_t = ?, resolve_reason = ? "
                           "WHERE id = ? AND state IN ('firing', 'acknowledged')", (now, reason, alert_id)))


def get(db: Database, alert_id: int) -> Row | None:
    return first(db, "SELECT * FROM alerts WHERE id = ?", (alert_id,))


def acknowledge(db: Database, alert_id: int, by: str, now: float) -> Row:
    """firing -> acknowledged (stops escalation and repeats). Acknowledging twice keeps the first."""
    by = (by or "").strip()
    if not by:
        raise AlertError("who acknowledges must be named")
    with db.transaction():
        row = get(db, alert_id)
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row["state"] == "firing":
            db.execute("UPDATE alerts SET state = 'acknowledged', acked_by = ?, acked_t = ? WHERE id = ?",
                       (by, now, alert_id))
            if row["fault_id"] is not None:
                db.execute("UPDATE fault_tickets SET acked_by = ?, acked_t = ?, updated = ? "
                           "WHERE fault_id = ? AND acked_t IS NULL", (by, now, now, row["fault_id"]))
        return get(db, alert_id) or row


def list_alerts(db: Database, school: str, state: str | None = None, limit: int = 1000) -> list[Row]:
    params: tuple[str, ...] = ()
    if state in (None, "", "all"):
        where = ""
    elif state == "open":
        where = "AND state IN ('firing', 'acknowledged')"
    elif state in ("firing", "acknowledged", "resolved"):
        where, params = "AND state = ?", (state,)
    else:
        raise AlertError(f"state {state!r} is not one of open, firing, acknowledged, resolved, all")
    return db.query(f"SELECT * FROM alerts WHERE school = ? {where} ORDER BY opened DESC, id DESC LIMIT ?",
                    (school, *params, limit))


def add_notice(db: Database, alert_id: int, school: str, channel: str, kind: str, group_key: str,
               due: float, now: float) -> None:
    """Queue a notice. A firing notice joins a group still waiting (group_wait) for the same channel."""
    if kind == "firing":
        rows = db.query("SELECT MIN(due) AS due FROM alert_notices WHERE channel = ? AND group_key = ? AND "
                        "school = ? AND kind = 'firing' AND status = 'pending' AND due > ?",
                        (channel, group_key, school, now))
        if rows and rows[0]["due"] is not None:
            due = min(due, float(rows[0]["due"]))
    db.execute("INSERT INTO alert_notices (alert_id, school, channel, kind, group_key, created, due) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", (alert_id, school, channel, kind, group_key, now, due))


def sent_firing(db: Database, alert_id: int) -> list[str]:
    """The channels that were told this alert fired (only they hear that it resolved)."""
    rows = db.query("SELECT DISTINCT channel FROM alert_notices WHERE alert_id = ? AND status = 'sent' "
                    "AND kind IN ('firing', 'repeat', 'escalation')", (alert_id,))
    return [r["channel"] for r in rows]


# -- silences and maintenance windows --------------------------------------------
def add_silence(db: Database, school: str, matchers: dict[str, Any], starts: float, ends: float,
                created_by: str | None, comment: str | None, kind: str = "silence", now: float = 0.0) -> int:
    if ends <= starts:
        raise AlertError("a silence must end after it starts")
    if kind not in ("silence", "maintenance"):
        raise AlertError("kind must be silence or maintenance")
    db.execute("INSERT INTO alert_silences (school, kind, matchers, starts, ends, created_by, comment, created) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (school, kind, json.dumps(matchers, ensure_ascii=False), starts, ends, created_by, comment, now))
    return int(db.query("SELECT MAX(id) AS id FROM alert_silences WHERE school = ?", (school,))[0]["id"])


def silences(db: Database, school: str, now: float) -> list[dict[str, Any]]:
    rows = db.query("SELECT * FROM alert_silences WHERE school = ? AND ends > ? ORDER BY starts", (school, now))
    return [dict(r, matchers=json.loads(r["matchers"])) for r in rows]


def expire_silence(db: Database, silence_id: int, now: float) -> bool:
    return bool(db.execute("UPDATE alert_silences SET ends = ? WHERE id = ? AND ends > ?", (now, silence_id, now)))


# -- signed acknowledgement links ---------------------------------------------------
def kv_get(db: Database, name: str) -> str | None:
    rows = db.query("SELECT value FROM alert_kv WHERE name = ?", (name,))
    return rows[0]["value"] if rows else None


def kv_set(db: Database, name: str, value: str) -> None:
    db.execute("INSERT INTO alert_kv (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = "
               "excluded.value", (name, value))


def secret(db: Database) -> bytes:
    db.execute("INSERT INTO alert_kv (name, value) VALUES ('ack_secret', ?) ON CONFLICT (name) DO NOTHING",
               (secrets.token_hex(32),))
    return bytes.fromhex(kv_get(db, "ack_secret") or "")


def sign(key: bytes, ids: list[int], person: str) -> str:
    msg = f"{','.join(str(i) for i in ids)}|{person}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def verify(key: bytes, ids: list[int], person: str, token: str) -> bool:
    return hmac.compare_digest(sign(key, ids, person), token or "")


def sign_review(key: bytes, fault_ids: list[int], person: str) -> str:
    """A review link's token: signed apart from acknowledgement links, so one cannot stand for the other."""
    msg = f"review|{','.join(str(i) for i in fault_ids)}|{person}".encode()  # an ack message starts with a digit
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def verify_review(key: bytes, fault_ids: list[int], person: str, token: str) -> bool:
    return hmac.compare_digest(sign_review(key, fault_ids, person), token or "")
