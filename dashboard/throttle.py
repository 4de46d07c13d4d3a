"""Login throttling that an attacker cannot turn into a lock-out (no Flask here; docs/security.md).

Failed logins make the next try wait, growing with each failure (2 s, 4 s, 8 s ... at most 15 min):

* per (address, user name): after ``FREE_PAIR`` failures — the guesser at one address;
* per address, any user: after ``FREE_ADDRESS`` failures — one address trying many names;
* per user name, any address: after ``FREE_USER`` failures — many addresses guessing one account;
  an address the user has logged in from before (a session in the store) is exempt, so the real user
  still gets in while an attacker elsewhere keeps failing.

A wrong password from one address therefore never stops the right one from another. Failures
count within ``WINDOW_S``, and for a user only since their last successful login or an
administrator's unlock (``bbt user unlock NAME`` or the users page, both audited). A throttled
try is answered without checking the password and is not counted.
"""
from __future__ import annotations

import time
from collections.abc import Sequence

from collector.db import Database

FREE_PAIR = 3          # failures per (address, user) before delays start
FREE_ADDRESS = 10      # ... per address, any user
FREE_USER = 30         # ... per user, from addresses the user never logged in from
BASE_S = 2.0           # the first delay; doubled with every further failure ...
CAP_S = 15 * 60.0      # ... up to this
WINDOW_S = 3600.0      # failures older than this are forgotten (attempts are kept a day: dashboard.sessions)


def delay(failures: int, free: int) -> float:
    """How long to wait after the last of ``failures`` failures (0 while within ``free``)."""
    if failures < free:
        return 0.0
    return min(CAP_S, BASE_S * 2.0 ** min(failures - free, 30))


def wait_s(pair: Sequence[float], address: Sequence[float], user: Sequence[float], known_address: bool,
           now: float) -> float:
    """Seconds until the next try is allowed, from the failure times (ascending) of each bound. Pure."""
    bounds = [(pair, FREE_PAIR), (address, FREE_ADDRESS)]
    if not known_address:
        bounds.append((user, FREE_USER))
    wait = 0.0
    for times, free in bounds:
        if times:
            wait = max(wait, times[-1] + delay(len(times), free) - now)
    return max(0.0, wait)


def note_attempt(db: Database, user: str, ip: str, ok: bool, now: float | None = None) -> None:
    db.execute("INSERT INTO login_attempts (t, user_name, ip, ok) VALUES (?, ?, ?, ?)",
               (time.time() if now is None else now, user, ip, int(ok)))


def _unlocked(db: Database, user: str) -> float:
    return float(db.query("SELECT MAX(t) AS t FROM login_unlocks WHERE user_name = ?", (user,))[0]["t"] or 0.0)


def _user_reset(db: Database, user: str) -> float:
    """The user's last successful login or unlock (failures before it do not count for that user)."""
    ok = db.query("SELECT MAX(t) AS t FROM login_attempts WHERE user_name = ? AND ok = 1", (user,))[0]["t"]
    return max(float(ok or 0.0), _unlocked(db, user))


def _times(db: Database, where: str, args: tuple[object, ...]) -> list[float]:
    rows = db.query(f"SELECT t FROM login_attempts WHERE ok = 0 AND {where} ORDER BY t", args)
    return [float(r["t"]) for r in rows]


def locked_for(db: Database, user: str, ip: str, now: float | None = None) -> float:
    """Seconds until this address may try this user name again (0: now)."""
    now = time.time() if now is None else now
    since = now - WINDOW_S
    user_since = max(since, _user_reset(db, user))
    pair_ok = db.query("SELECT MAX(t) AS t FROM login_attempts WHERE user_name = ? AND ip = ? AND ok = 1",
                       (user, ip))[0]["t"]
    # (the real user's login elsewhere does not reset the guesser's count: only theirs, or an unlock)
    pair_since = max(since, float(pair_ok or 0.0), _unlocked(db, user))
    pair = _times(db, "user_name = ? AND ip = ? AND t > ?", (user, ip, pair_since))
    address = _times(db, "ip = ? AND t > ?", (ip, since))
    known = bool(db.query("SELECT 1 AS k FROM web_sessions WHERE user_name = ? AND ip = ? LIMIT 1", (user, ip)))
    everyone = [] if known else _times(db, "user_name = ? AND t > ?", (user, user_since))
    return wait_s(pair, address, everyone, known, now)


def recent_failures(db: Database, now: float | None = None) -> dict[str, int]:
    """User name -> failed logins that still count (for the users page)."""
    now = time.time() if now is None else now
    out: dict[str, int] = {}
    for r in db.query("SELECT user_name, COUNT(*) AS n FROM login_attempts WHERE ok = 0 AND t > ? "
                      "GROUP BY user_name", (now - WINDOW_S,)):
        n = len(_times(db, "user_name = ? AND t > ?", (r["user_name"], max(now - WINDOW_S,
                                                                          _user_reset(db, r["user_name"])))))
        if n:
            out[str(r["user_name"])] = n
    return out


def unlock(db: Database, user: str, actor: str, now: float | None = None) -> int:
    """An administrator lifts the throttling of a user (every address); returns the failures forgiven."""
    now = time.time() if now is None else now
    forgiven = len(_times(db, "user_name = ? AND t > ?", (user, max(now - WINDOW_S, _user_reset(db, user)))))
    db.execute("INSERT INTO login_unlocks (t, user_name, actor) VALUES (?, ?, ?)", (now, user, actor))
    return forgiven

