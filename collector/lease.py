"""Leases in the store: a named job (alert evaluation, scheduled reports) runs on one process only.

With several collectors (district set-up) every process starts the same schedulers; each job
asks ``Lease.held()`` before it runs and only the current holder goes ahead. A lease expires
``ttl`` seconds after its last renewal, so when its holder dies another process takes over
within ``ttl``. ``epoch`` grows by one at every change of holder (a fencing token: a job can
store it with its output to detect that a paused holder lost the lease meanwhile).

Times are the processes' clocks (epoch seconds): hosts sharing a store must run NTP, and
``ttl`` must be well above any clock difference between them (the default 30 s is).

Usage by a scheduler::

    lease = Lease(db, "alerts")          # holder defaults to host:pid
    def job():
        if not lease.held():
            return                       # another collector runs it
        evaluate_alerts(db)
    ...
    lease.release()                      # at shutdown: hand over at once
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

from collector.db import Database

DEFAULT_TTL = 30.0


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class LeaseInfo:
    name: str
    holder: str
    expires: float
    acquired: float
    epoch: int


def acquire(db: Database, name: str, holder: str, ttl: float = DEFAULT_TTL, now: float | None = None) -> bool:
    """Take the lease if it is free or expired, or renew it if ``holder`` has it; True when held."""
    now = time.time() if now is None else now
    with db.transaction():
        n = db.execute(
            "INSERT INTO leases (name, holder, expires, acquired, epoch) VALUES (?, ?, ?, ?, 1) "
            "ON CONFLICT (name) DO UPDATE SET "
            "epoch = CASE WHEN leases.holder = excluded.holder THEN leases.epoch ELSE leases.epoch + 1 END, "
            "acquired = CASE WHEN leases.holder = excluded.holder THEN leases.acquired ELSE excluded.acquired END, "
            "holder = excluded.holder, expires = excluded.expires "
            "WHERE leases.holder = excluded.holder OR leases.expires <= ?",
            (name, holder, now + ttl, now, now))
    return n > 0


def renew(db: Database, name: str, holder: str, ttl: float = DEFAULT_TTL, now: float | None = None) -> bool:
    """Extend a lease ``holder`` still has (False if it expired and someone else took it)."""
    now = time.time() if now is None else now
    return db.execute("UPDATE leases SET expires = ? WHERE name = ? AND holder = ?",
                      (now + ttl, name, holder)) > 0


def release(db: Database, name: str, holder: str) -> bool:
    """Give the lease up at once (only its holder can); True if it was held."""
    return db.execute("UPDATE leases SET expires = 0 WHERE name = ? AND holder = ?", (name, holder)) > 0


def current(db: Database, name: str, now: float | None = None) -> LeaseInfo | None:
    """Who holds the lease now (None if nobody, or it expired)."""
    now = time.time() if now is None else now
    rows = db.query("SELECT name, holder, expires, acquired, epoch FROM leases WHERE name = ? AND expires > ?",
                    (name, now))
    return LeaseInfo(**rows[0]) if rows else None


class Lease:
    """One process's view of one named lease; ``held()`` is cheap to call before every job run."""

    def __init__(self, db: Database, name: str, holder: str | None = None, ttl: float = DEFAULT_TTL) -> None:
        self.db = db
        self.name = name
        self.holder = holder or default_holder()
        self.ttl = ttl
        self._until = 0.0  # locally known to hold it until then (half the ttl after the last renewal)
        self._lock = threading.Lock()

    def held(self) -> bool:
        """True when this process holds the lease (acquiring or renewing it as needed)."""
        with self._lock:
            now = time.time()
            if now < self._until:
                return True
            if acquire(self.db, self.name, self.holder, self.ttl, now):
                self._until = now + self.ttl / 2
                return True
            self._until = 0.0
            return False

    def release(self) -> None:
        with self._lock:
            if self._until:
                release(self.db, self.name, self.holder)
            self._until = 0.0
