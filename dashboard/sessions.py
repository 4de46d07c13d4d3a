"""Server-side login sessions (no Flask here; the login rate limit is dashboard.throttle).

The browser's signed cookie carries only a random session id; the store maps its hash to the
user. Login always issues a new id, logout and a password change revoke ids, so a copied
cookie stops working.
"""
from __future__ import annotations

import hashlib
import secrets
import time

from collector.db import Database

IDLE_TIMEOUT_S = 12 * 3600


def _h(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


KEEP_ATTEMPTS_S = 86400          # login attempts (user names, addresses) are kept a day
KEEP_SESSIONS_S = 30 * 86400     # ended or idle sessions a month


def create(db: Database, user: str, ip: str | None) -> str:
    """A new session for a user who just logged in (old attempts and sessions are dropped on the way)."""
    sid = secrets.token_urlsafe(32)
    now = time.time()
    db.execute("DELETE FROM login_attempts WHERE t < ?", (now - KEEP_ATTEMPTS_S,))
    db.execute("DELETE FROM web_sessions WHERE last_seen < ?", (now - KEEP_SESSIONS_S,))
    db.execute("INSERT INTO web_sessions (sid_hash, user_name, created, last_seen, ip) VALUES (?, ?, ?, ?, ?)",
               (_h(sid), user, now, now, ip))
    return sid


def lookup(db: Database, sid: str, now: float | None = None) -> str | None:
    """The user of a live session (touching it), or None."""
    now = time.time() if now is None else now
    rows = db.query("SELECT user_name, last_seen FROM web_sessions WHERE sid_hash = ? AND revoked IS NULL",
                    (_h(sid),))
    if not rows or now - rows[0]["last_seen"] > IDLE_TIMEOUT_S:
        return None
    if now - rows[0]["last_seen"] > 60:  # write at most once a minute per session
        db.execute("UPDATE web_sessions SET last_seen = ? WHERE sid_hash = ?", (now, _h(sid)))
    return str(rows[0]["user_name"])


def revoke(db: Database, sid: str) -> None:
    db.execute("UPDATE web_sessions SET revoked = ? WHERE sid_hash = ? AND revoked IS NULL", (time.time(), _h(sid)))


def revoke_user(db: Database, user: str, keep: str | None = None) -> int:
    """Revoke every session of a user (except ``keep``): after a password change or disabling."""
    return db.execute("UPDATE web_sessions SET revoked = ? WHERE user_name = ? AND revoked IS NULL AND sid_hash <> ?",
                      (time.time(), user, _h(keep) if keep else ""))
