"""Commands to classroom PCs (docs/commands.md): created, stored, published at QoS 1 on
bbt/v1/{school}/{device}/cmd, tracked until the agent acks them or they expire.

:func:`publish` is the one place a command goes on the wire (a signature can be added there).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import protocol
from collector.db import Database
from collector.devices import school_keys
from collector.devices.ingest import Prepared
from collector.devices.mqttout import Send
from common import signing
from common.errors import BbtError

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_S = 3600
STATES = ("pending", "sent", "acked", "failed", "expired")


class CommandError(BbtError):
    pass


def resolve_targets(db: Database, device: str | None = None, klass: str | None = None,
                    school: str | None = None) -> list[tuple[str, str]]:
    """(school, device) pairs for exactly one of: a device, a class, a whole school."""
    if sum(x is not None for x in (device, klass)) > 1 or (device is None and klass is None and school is None):
        raise CommandError("name one target: a DEVICE, or --class C, or --school S")
    given = {col: v for col, v in (("school", school), ("device", device), ("class", klass)) if v is not None}
    where, params = [f"{col} = ?" for col in given], list(given.values())
    rows = db.query(f"SELECT school, device FROM devices WHERE {' AND '.join(where)} ORDER BY school, device", params)
    targets = [(r["school"], r["device"]) for r in rows]
    what = (f"device {device!r}" if device is not None else f"class {klass!r}" if klass is not None
            else f"school {school!r}")
    if not targets:
        in_school = f" in school {school!r}" if school is not None and (device or klass) else ""
        raise CommandError(f"no known device for {what}{in_school}")
    if device is not None and len(targets) > 1:
        schools = ", ".join(s for s, _ in targets)
        raise CommandError(f"device {device!r} exists in several schools ({schools}): add --school")
    return targets


def create(db: Database, kind: str, args: dict[str, Any], targets: list[tuple[str, str]],
           expires_in: float = DEFAULT_EXPIRES_S, now: float | None = None) -> list[dict[str, Any]]:
    """Validate and store one command per target (state 'pending'); all or nothing."""
    try:
        protocol.validate_command_args(kind, args)
    except protocol.Rejected as r:
        raise CommandError(r.message) from None
    if expires_in < 1:
        raise CommandError("a command must stay valid for at least 1 second (--expires-in)")
    now = time.time() if now is None else now
    issued, expires = round(now), round(now + expires_in)
    out = []
    with db.transaction():
        for school, device in targets:
            cmd = protocol.make_command(f"c-{secrets.token_hex(8)}", kind, args, datetime.fromtimestamp(
                issued, UTC), datetime.fromtimestamp(expires, UTC))
            db.execute("INSERT INTO commands (id, school, device, kind, args, issued, expires, state, payload) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                       (cmd["id"], school, device, kind, json.dumps(args, ensure_ascii=False), issued, expires,
                        json.dumps(cmd, ensure_ascii=False)))
            out.append({"school": school, "device": device, "command": cmd})
    return out


def publish(send: Send, school: str, device: str, cmd: dict[str, Any], key: Any = None) -> None:
    """The one place a command goes on the wire: QoS 1, not retained, signed (Ed25519) with ``key``, the
    school's key (collector.devices.school_keys.private_key), or BBT_SIGNING_KEY (docs/security.md)."""
    send(protocol.cmd_topic(school, device), protocol.dumps(signing.sign_command(cmd, key)), False)


def mark_sent(db: Database, command_id: str, now: float | None = None) -> None:
    db.execute("UPDATE commands SET state = 'sent', sent = ? WHERE id = ? AND state = 'pending'",
               (time.time() if now is None else now, command_id))


def send_created(db: Database, send: Send, created: list[dict[str, Any]]) -> int:
    for c in created:
        publish(send, c["school"], c["device"], c["command"], school_keys.private_key(db, c["school"]))
        mark_sent(db, c["command"]["id"])
    return len(created)


def publish_pending(db: Database, send: Send, now: float | None = None) -> int:
    """Publish stored commands that never reached the broker and are still valid."""
    now = time.time() if now is None else now
    rows = db.query("SELECT id, school, device, payload FROM commands WHERE state = 'pending' AND expires > ? "
                    "ORDER BY issued", (now,))
    for r in rows:
        publish(send, r["school"], r["device"], json.loads(r["payload"]), school_keys.private_key(db, r["school"]))
        mark_sent(db, r["id"])
    return len(rows)


def handle_ack(db: Database, p: Prepared) -> None:
    """The collector's ack_handler: an ack on cmd/ack settles the command (inside the ingest transaction)."""
    ack = p.status
    rows = db.query("SELECT state FROM commands WHERE id = ? AND school = ? AND device = ?",
                    (ack["id"], p.school, p.device))
    if not rows:
        log.info("ack from %s/%s for an unknown command id", p.school, p.device)
        return
    if rows[0]["state"] in ("acked", "failed"):
        return  # a redelivered ack
    error = ack.get("error")
    db.execute("UPDATE commands SET state = ?, acked = ?, error = ? WHERE id = ?",
               ("acked" if ack["ok"] else "failed", p.msg.received, error[:1000] if error else None, ack["id"]))


def expire(db: Database, now: float | None = None) -> int:
    """Mark commands that were not acked in time as expired."""
    now = time.time() if now is None else now
    return db.execute("UPDATE commands SET state = 'expired' WHERE state IN ('pending', 'sent') AND expires <= ?",
                      (now,))


def list_commands(db: Database, school: str | None = None, state: str | None = None, device: str | None = None,
                  limit: int = 200) -> list[dict[str, Any]]:
    expire(db)
    where, params = [], []
    for col, value in (("school", school), ("state", state), ("device", device)):
        if value is not None:
            where.append(f"{col} = ?")
            params.append(value)
    sql = ("SELECT id, school, device, kind, args, issued, expires, state, sent, acked, error FROM commands "
           f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY issued DESC, id LIMIT ?")
    rows = db.query(sql, (*params, limit))
    for r in rows:
        r["args"] = json.loads(r["args"])
    return rows
