"""MQTT accounts of the embedded broker (docs/security.md): one per PC, one for the collector.

- A PC's username is its device id (protocol.md §1) and its password a random secret that
  only the PC has; the store keeps an argon2 hash. Made by enrolment (collector.intake.enrolment) or by
  :func:`provision` (the demo, tests, a script of the admin's).
- A revoked PC stays revoked: its credentials stop working and it cannot enrol again under that
  id until an admin resets it (:func:`reset`).
- The collector's account (``COLLECTOR_USER``, a name no device can have) has a generated password
  kept in the store, which the server, the dashboard and the CLI use to publish; it is never logged.
- :func:`device_may` is the one rule of what a PC may publish, subscribe to and receive.
"""
from __future__ import annotations

import secrets
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

import protocol
from collector.audit import audit
from collector.db import Database, first
from common.errors import BbtError

COLLECTOR_USER = "bbt:collector"  # ':' is not allowed in device ids: no PC can take this name
# The passwords are 192-bit random secrets (nothing to guess), so the hash needs no heavy cost; a
# light one keeps 500 PCs connecting at once after a server restart cheap for the broker.
_hasher = PasswordHasher(time_cost=2, memory_cost=8 * 1024, parallelism=1)


class CredentialError(BbtError):
    pass


def new_secret() -> str:
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return bool(_hasher.verify(secret_hash, secret))
    except (VerificationError, InvalidHashError):
        return False


def get(db: Database, device: str) -> dict[str, Any] | None:
    return first(db, "SELECT device, school, secret_hash, created, revoked, revoked_by, ip FROM device_credentials "
                     "WHERE device = ?", (device,))


def provision(db: Database, school: str, device: str, who: str, ip: str | None = None,
              now: float | None = None) -> str:
    """Make the MQTT account of a PC and return its password (shown once, stored hashed).
    Refused when the id is taken: by an enrolled PC, by a revoked one, or in another school."""
    for name, value in (("school", school), ("device", device)):
        if not protocol.valid_id(value):
            raise CredentialError(f"{name} {value!r} must match {protocol.ID_PATTERN}")
    secret = new_secret()
    now = time.time() if now is None else now
    with db.transaction():
        row = get(db, device)
        if row is not None:
            raise CredentialError(_taken(row, school, device))
        db.execute("INSERT INTO schools (school) VALUES (?) ON CONFLICT (school) DO NOTHING", (school,))
        db.execute("INSERT INTO device_credentials (device, school, secret_hash, created, ip) VALUES (?, ?, ?, ?, ?)",
                   (device, school, hash_secret(secret), now, ip))
        audit(db, "device.enrol", f"{school}/{device}", {"ip": ip}, who, now)
    return secret


def _taken(row: dict[str, Any], school: str, device: str) -> str:
    if row["school"] != school:
        return f"device id {device!r} is already enrolled in school {row['school']!r}"
    if row["revoked"] is not None:
        return (f"device {device!r} was revoked; an admin must reset it before it can enrol again "
                f"(bbt device reset {device} --school {school})")
    return (f"device {device!r} is already enrolled; to enrol it again (a reinstalled PC), an admin first "
            f"resets it (bbt device reset {device} --school {school})")


def _one(db: Database, school: str, device: str) -> dict[str, Any]:
    row = get(db, device)
    if row is None or row["school"] != school:
        raise CredentialError(f"device {device!r} of school {school!r} has no credentials (never enrolled)")
    return row


def revoke(db: Database, school: str, device: str, who: str, now: float | None = None) -> None:
    """Cut a PC off: its credentials stop working (the embedded broker also drops its connection)."""
    now = time.time() if now is None else now
    with db.transaction():
        row = _one(db, school, device)
        if row["revoked"] is not None:
            return
        db.execute("UPDATE device_credentials SET revoked = ?, revoked_by = ? WHERE device = ?", (now, who, device))
        audit(db, "device.revoke", f"{school}/{device}", {}, who, now)


def reset(db: Database, school: str, device: str, who: str, now: float | None = None) -> None:
    """Forget a PC's credentials (revoking them) so that it may enrol again, e.g. after a reinstall."""
    with db.transaction():
        _one(db, school, device)
        db.execute("DELETE FROM device_credentials WHERE device = ?", (device,))
        audit(db, "device.reset", f"{school}/{device}", {}, who, now)


def list_enrolled(db: Database, school: str) -> list[dict[str, Any]]:
    return db.query("SELECT device, school, created, revoked, revoked_by, ip FROM device_credentials "
                    "WHERE school = ? ORDER BY device", (school,))


def revoked_since(db: Database, since: float) -> list[dict[str, Any]]:
    return db.query("SELECT device, school, revoked FROM device_credentials WHERE revoked IS NOT NULL "
                    "AND revoked > ? ORDER BY revoked", (since,))


def stored_collector_password(db: Database) -> str | None:
    rows = db.query("SELECT secret FROM broker_accounts WHERE username = ?", (COLLECTOR_USER,))
    return str(rows[0]["secret"]) if rows else None


def collector_password(db: Database, now: float | None = None) -> str:
    """The collector's broker password, generated on first need and kept in the store."""
    stored = stored_collector_password(db)
    if stored is not None:
        return stored
    with db.transaction():
        db.execute("INSERT INTO broker_accounts (username, secret, created) VALUES (?, ?, ?) "
                   "ON CONFLICT (username) DO NOTHING", (COLLECTOR_USER, new_secret(), time.time() if now is None
                                                         else now))
    return str(db.query("SELECT secret FROM broker_accounts WHERE username = ?", (COLLECTOR_USER,))[0]["secret"])


def device_may(action: str, school: str, device: str, topic: str) -> bool:
    """What a PC may do on the broker: publish its own status, events and command acks; subscribe to
    (and receive) its own commands and its school's policy. Exact topics only, no wildcards."""
    base = f"{protocol.PREFIX}/{school}/{device}"
    if action == "publish":
        return topic in (f"{base}/status", f"{base}/events", f"{base}/cmd/ack")
    if action in ("subscribe", "receive"):
        return topic in (f"{base}/cmd", f"{protocol.PREFIX}/{school}/policy")
    return False
