"""The agent's local SQLite outbox: every event is written here first and leaves only on PUBACK.

``seq`` is assigned here and survives restarts; ``id`` is a random UUID, unique forever.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import protocol

KEEP_ON_OVERFLOW = ("power", "fault", "software", "session", "drift")


class Outbox:
    def __init__(self, path: str, max_events: int = 100000, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, "
                         "body TEXT NOT NULL, created REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.dropped = 0

    # -- meta (small persistent key/values: next seq, last shutdown, ...) ----
    def get_meta(self, key: str, default: Optional[str] = None) -> Optional[str]:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (key, value))

    # -- events ----------------------------------------------------------------
    def add(self, etype: str, data: Dict[str, Any], ts: Optional[datetime] = None) -> Dict[str, Any]:
        """Assign seq and id, store durably, return the event object."""
        when = ts or datetime.now(timezone.utc).astimezone()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                seq = int(self.get_meta("next_seq", "0") or 0)
                event = protocol.make_event(uuid.uuid4().hex, seq, etype, when, data)
                body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
                self._db.execute("INSERT INTO outbox (seq, type, body, created) VALUES (?, ?, ?, ?)",
                                 (seq, etype, body, time.time()))
                self._db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT (key) "
                                 "DO UPDATE SET value = excluded.value", (str(seq + 1),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._enforce_bounds()
        return event

    def _enforce_bounds(self) -> None:
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox").fetchone()
        if count <= self.max_events and size <= self.max_bytes:
            return
        excess = max(count - self.max_events, 1 if size > self.max_bytes else 0, count // 100)
        marks = ",".join("?" * len(KEEP_ON_OVERFLOW))
        cur = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE type NOT IN (%s) ORDER BY "
            "CASE type WHEN 'heartbeat' THEN 0 ELSE 1 END, seq LIMIT ?)" % marks, (*KEEP_ON_OVERFLOW, excess))
        self.dropped += cur.rowcount
        if cur.rowcount:
            self.set_meta("dropped_total", str(int(self.get_meta("dropped_total", "0") or 0) + cur.rowcount))

    def peek(self, limit: int = protocol.MAX_BATCH, max_bytes: int = protocol.MAX_PAYLOAD - 1024
             ) -> List[Tuple[int, Dict[str, Any]]]:
        """Oldest events first, at most ``limit`` and fitting in one message."""
        rows = self._db.execute("SELECT seq, body FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        out: List[Tuple[int, Dict[str, Any]]] = []
        total = 2
        for seq, body in rows:
            total += len(body.encode("utf-8")) + 1
            if out and total > max_bytes:
                break
            out.append((seq, json.loads(body)))
        return out

    def remove(self, seqs: List[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        self._db.close()
