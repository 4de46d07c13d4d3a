"""The agent's local SQLite outbox: every event is written here first and leaves only on PUBACK.

``seq`` is assigned here and survives restarts; ``id`` is a random UUID, unique forever.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

import protocol

# never dropped when the outbox is full; the rest goes oldest first, heartbeats before anything else
KEEP_ON_OVERFLOW = ("power", "fault", "software", "session", "drift")
DROP_ORDER = ("heartbeat", "usb", "inventory")
# A delivered batch this small is deleted in the next event's transaction instead of one of its own
# (one durable commit a minute instead of two on an idle PC). After a crash those few events go out
# again; the collector stores a repeated id once (protocol.md §1). A backlog is deleted batch by batch.
DEFER_DELETE_MAX = 20


def _marks(items: Any) -> str:
    """SQL placeholders for ``items``: "?,?,?"."""
    return ",".join("?" * len(items))


def _salvage(path: str) -> Tuple[List[Tuple[int, str, str, float]], Dict[str, str]]:
    """Whatever rows and meta values a damaged outbox still gives up (often nothing)."""
    rows: List[Tuple[int, str, str, float]] = []
    meta: Dict[str, str] = {}
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=1)
    except sqlite3.Error:
        return rows, meta
    try:
        for sql, sink in (("SELECT key, value FROM meta", "meta"),
                          ("SELECT seq, type, body, created FROM outbox", "rows")):
            try:
                for r in db.execute(sql):
                    if sink == "meta":
                        meta[str(r[0])] = str(r[1])
                    else:
                        json.loads(r[2])  # only events that still parse
                        rows.append((int(r[0]), str(r[1]), str(r[2]), float(r[3])))
            except (sqlite3.Error, ValueError, TypeError):
                continue
    finally:
        db.close()
    return rows, meta


class Outbox:
    def __init__(self, path: str, max_events: int = 100000, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = path
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.RLock()
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.dropped = 0
        self._adds = 0
        self._next_seq: Optional[int] = None  # read from meta on the first add, then kept here
        self._drops_untold = True  # a drop report may wait in meta (left by an earlier run)
        self._delivered: List[int] = []  # acknowledged, deleted with the next event (DEFER_DELETE_MAX)
        self._sizes: Dict[int, int] = {}  # seq -> LENGTH(body) of the last batch handed out
        self.recovered: Optional[str] = None  # set when a damaged outbox was moved aside
        try:
            self._db = self._open(path)
        except sqlite3.DatabaseError as e:  # damaged file (disk error, power cut, tampering)
            self._db = self._recover(str(e))
        self._resync()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Debian builds SQLite with secure_delete on: zeroing the pages of every delivered inventory
            # (~20 pages) is I/O for nothing (the outbox holds what the server receives anyway)
            db.execute("PRAGMA secure_delete=FAST")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError("quick_check: %s" % check)
            db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, "
                       "body TEXT NOT NULL, created REAL NOT NULL)")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        except BaseException:
            db.close()
            raise
        return db

    def _recover(self, reason: str) -> sqlite3.Connection:
        """Move the damaged outbox aside (kept for inspection), salvage what still reads, start afresh.

        Events that cannot be read are lost; the new outbox continues ``seq`` above anything used
        before (the salvaged counter, else the clock), so the collector sees the loss as a gap, and a
        ``fault`` event (outbox_corrupt) says what happened.
        """
        aside = "%s.corrupt-%d" % (self.path, int(time.time()))
        rows, meta = _salvage(self.path)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, aside + suffix)
        db = self._open(self.path)
        salvaged_seq = max([int(meta.get("next_seq", 0) or 0)] + [r[0] + 1 for r in rows])
        next_seq = salvaged_seq if meta.get("next_seq") else max(salvaged_seq, int(time.time()))
        meta.update({"next_seq": str(next_seq), "running": "1"})
        db.execute("BEGIN IMMEDIATE")
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                       list(meta.items()))
        db.executemany("INSERT INTO outbox (seq, type, body, created) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (seq) DO NOTHING", rows)
        db.execute("COMMIT")
        self._db = db
        self._next_seq = None
        self._resync()
        self.recovered = "%s; moved aside to %s; %d events salvaged" % (reason, os.path.basename(aside), len(rows))
        detail = {"reason": reason[:200], "moved_to": os.path.basename(aside), "salvaged": len(rows),
                  "seq_from": next_seq}
        self.add("fault", {"code": "outbox_corrupt", "severity": "warning", "state": "raised", "detail": detail})
        self.add("fault", {"code": "outbox_corrupt", "severity": "warning", "state": "cleared",
                           "detail": "a fresh outbox is in use"})
        return db

    def _resync(self) -> None:
        """Count and size of what is queued (kept in memory; re-read now and then)."""
        count, size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox WHERE seq "
                                       "NOT IN (%s)" % _marks(self._delivered), self._delivered).fetchone()
        self._count, self._bytes = int(count), int(size)

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
            try:
                event, body = self._insert(etype, data, when)
            except sqlite3.IntegrityError:  # seq taken: another process wrote to this outbox
                event, body = self._insert(etype, data, when)
            self._count += 1
            self._bytes += len(body)
            self._adds += 1
            if self._adds % 1000 == 0:
                self._resync()
            if self._count > self.max_events or self._bytes > self.max_bytes:
                self._resync()
                self._enforce_bounds()
        return event

    def _insert(self, etype: str, data: Dict[str, Any], when: datetime) -> Tuple[Dict[str, Any], str]:
        """One event in one transaction. The next seq is kept in memory after the first read (one query
        less per event); on any failure it is read from the outbox again."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._delivered:
                self._db.execute("DELETE FROM outbox WHERE seq IN (%s)" % _marks(self._delivered), self._delivered)
            seq = self._next_seq if self._next_seq is not None else int(self.get_meta("next_seq", "0") or 0)
            event = protocol.make_event(os.urandom(16).hex(), seq, etype, when, data)  # 128 random bits
            body = protocol.dumps(event).decode("utf-8")  # the wire encoding: the publisher sends it as is
            self._db.execute("INSERT INTO outbox (seq, type, body, created) VALUES (?, ?, ?, ?)",
                             (seq, etype, body, time.time()))
            self._db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?) ON CONFLICT (key) "
                             "DO UPDATE SET value = excluded.value", (str(seq + 1),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            self._next_seq = None
            raise
        self._next_seq = seq + 1
        self._delivered = []
        return event, body

    def _enforce_bounds(self) -> None:
        """Drop the least valuable events (heartbeats first, oldest first) down to 99% of the bounds."""
        self.remove([])  # what was delivered goes first, and is not counted as dropped
        marks = _marks(KEEP_ON_OVERFLOW)
        order = " ".join("WHEN '%s' THEN %d" % (t, i) for i, t in enumerate(DROP_ORDER))
        chunk = max(1, self.max_events // 100)
        while self._count > self.max_events * 0.99 or self._bytes > self.max_bytes * 0.99:
            rows = self._db.execute(
                "SELECT seq, type, LENGTH(body) FROM outbox WHERE type NOT IN (%s) ORDER BY CASE type %s "
                "ELSE %d END, seq LIMIT ?" % (marks, order, len(DROP_ORDER)), (*KEEP_ON_OVERFLOW, chunk)).fetchall()
            if not rows:
                return  # only events that are never dropped are left: keep them all
            self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(r[0],) for r in rows])
            self._count -= len(rows)
            self._bytes -= sum(int(r[2]) for r in rows)
            self.dropped += len(rows)
            report = self.drop_report() or {"dropped": 0, "types": {}, "first_seq": rows[0][0], "last_seq": 0}
            report["dropped"] += len(rows)
            for r in rows:
                report["types"][r[1]] = report["types"].get(r[1], 0) + 1
            report["first_seq"] = min(report["first_seq"], min(r[0] for r in rows))
            report["last_seq"] = max(report["last_seq"], max(r[0] for r in rows))
            self.set_meta("drop_report", json.dumps(report))
            self._drops_untold = True
            self.set_meta("dropped_total", str(int(self.get_meta("dropped_total", "0") or 0) + len(rows)))

    def drop_report(self) -> Optional[Dict[str, Any]]:
        """What was dropped since the report was last taken: {dropped, types, first_seq, last_seq}."""
        raw = self.get_meta("drop_report")
        return json.loads(raw) if raw else None

    def take_drop_report(self) -> Optional[Dict[str, Any]]:
        with self._lock:
            if not self._drops_untold:  # the fault check asks every minute: no query when nothing dropped
                return None
            report = self.drop_report()
            if report:
                self._db.execute("DELETE FROM meta WHERE key = 'drop_report'")
            self._drops_untold = False
            return report

    @property
    def fill(self) -> float:
        """How full the outbox is, 0..1 of the tighter bound."""
        return max(self._count / max(self.max_events, 1), self._bytes / max(self.max_bytes, 1))

    def peek(self, limit: int = protocol.MAX_BATCH, max_bytes: int = protocol.MAX_PAYLOAD - 1024
             ) -> List[Tuple[int, Dict[str, Any]]]:
        """Oldest events first, at most ``limit`` and fitting in one message."""
        return [(seq, json.loads(body)) for seq, body in self.next_batch(limit, max_bytes)]

    def next_batch(self, limit: int = protocol.MAX_BATCH, max_bytes: int = protocol.MAX_PAYLOAD - 1024
                   ) -> List[Tuple[int, bytes]]:
        """As :meth:`peek`, but each event as the UTF-8 JSON it is stored as (what goes on the wire:
        the publisher does not parse and re-encode it)."""
        rows = self._db.execute("SELECT seq, body, type FROM outbox WHERE seq NOT IN (%s) ORDER BY seq LIMIT ?"
                                % _marks(self._delivered), (*self._delivered, limit)).fetchall()
        out: List[Tuple[int, bytes]] = []
        total = 2
        for seq, body, etype in rows:
            raw = body.encode("utf-8")
            total += len(raw) + 1
            if out and (total > max_bytes or etype in protocol.ISOLATED_TYPES):
                break
            out.append((seq, raw))
            if etype in protocol.ISOLATED_TYPES:
                break  # alone in its message: a collector that does not know the type rejects only it
        self._sizes = {seq: len(body) for seq, body, _ in rows[:len(out)]}
        return out

    @property
    def pending(self) -> int:
        """How many events wait (kept in memory: no query)."""
        return self._count

    def remove(self, seqs: List[int], defer: bool = False) -> None:
        """Forget delivered events. ``defer``: a few may wait to be deleted with the next event
        (:data:`DEFER_DELETE_MAX`); ``remove([])`` deletes whatever waits."""
        with self._lock:
            new = [s for s in seqs if s not in self._delivered]
            if not new and not self._delivered:
                return
            sizes = self._sizes
            if all(s in sizes for s in new):  # the batch just sent (no query)
                size: Tuple[int, int] = (len(new), sum(sizes.pop(s) for s in new))
            else:
                size = self._db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM outbox WHERE seq IN "
                                        "(%s)" % _marks(new), new).fetchone()
                for s in new:
                    sizes.pop(s, None)
            if defer and len(self._delivered) + len(new) <= DEFER_DELETE_MAX:
                self._delivered += new
            else:
                gone = self._delivered + new
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.execute("DELETE FROM outbox WHERE seq IN (%s)" % _marks(gone), gone)
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._delivered = []
            self._count -= int(size[0])
            self._bytes -= int(size[1])

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox WHERE seq NOT IN (%s)" % _marks(self._delivered),
                                        self._delivered).fetchone()[0])

    def close(self) -> None:
        """Deletes what was delivered and waits (a clean stop sends nothing twice), then closes."""
        try:
            self.remove([])
        except sqlite3.Error:
            pass  # sent again after the restart: the collector stores it once
        self._db.close()
