"""Each school's Ed25519 command-signing key, made by the server on first need and kept in the store.

Policies and commands go on the wire signed with it (collector.devices.policy / collector.devices.commands); an
enrolled agent pins its public key (collector.intake.enrolment) and obeys nothing else. ``BBT_SIGNING_KEY``
(a key file from `bbt deploy certs` / `bbt deploy keys`) overrides it for every school: the agents
of that production set-up are configured with its public key (docs/security.md).
"""
from __future__ import annotations

import os
import time
from typing import Any

from collector.db import Database
from common import signing

_CACHE: dict[str, Any] = {}


def _load_pem(pem: str) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem.encode("ascii"), None)


def ensure(db: Database, school: str, now: float | None = None) -> str:
    """The school's public key (base64), making the key pair when the school has none."""
    rows = db.query("SELECT public_b64 FROM school_keys WHERE school = ?", (school,))
    if rows:
        return str(rows[0]["public_b64"])
    pem = signing.generate_private_pem().decode("ascii")
    pub = signing.public_b64(_load_pem(pem))
    with db.transaction():
        db.execute("INSERT INTO school_keys (school, private_pem, public_b64, created) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (school) DO NOTHING", (school, pem, pub, time.time() if now is None else now))
    # another process may have won the race: what is stored is the key
    return str(db.query("SELECT public_b64 FROM school_keys WHERE school = ?", (school,))[0]["public_b64"])


def ensure_all(db: Database) -> int:
    """Make the missing keys of every known school (the server's start); returns how many were made."""
    made = 0
    have = {r["school"] for r in db.query("SELECT school FROM school_keys")}
    for r in db.query("SELECT school FROM schools ORDER BY school"):
        if r["school"] not in have:
            ensure(db, r["school"])
            made += 1
    return made


def private_key(db: Database, school: str) -> Any:
    """The key that signs what goes to this school: BBT_SIGNING_KEY when set, else the school's own."""
    env = signing.wire_key()
    if env is not None:
        return env
    ensure(db, school)
    pem = db.query("SELECT private_pem FROM school_keys WHERE school = ?", (school,))[0]["private_pem"]
    if pem not in _CACHE:
        _CACHE[pem] = _load_pem(str(pem))
    return _CACHE[pem]


def public_key(db: Database, school: str) -> str:
    """The public key an agent of this school pins (base64 raw Ed25519)."""
    if os.environ.get("BBT_SIGNING_KEY"):
        return signing.public_b64(signing.wire_key())
    return ensure(db, school)
