"""Delivery: pending notices -> grouped Chinese messages -> apprise, in its own thread.

Holds (quiet hours, silences) move a notice's due time; inhibited notices are re-checked later;
a failed send is retried with backoff. A per-channel rate limit (WeCom/DingTalk bots: 20 a
minute) is kept by merging the excess into one message: nothing is dropped.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict, deque
from datetime import datetime
from typing import Any, Callable, Protocol
from urllib.parse import quote

from alerts import config, messages, routing, store
from alerts.evaluate import labels_of
from collector.db import Database, Row
from collector.devices.registry import school_tz
from collector.rates import fault_review

log = logging.getLogger(__name__)
FIRING_KINDS = ("firing", "repeat", "escalation")
INHIBIT_RECHECK_S = 30.0


class Sender(Protocol):
    def send(self, channel: dict[str, Any], body: str) -> bool: ...


class _Redact(logging.Filter):
    """Masks channel secrets in the log records of apprise and urllib3 (they log URLs at debug level)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add_url(self, url: str) -> None:
        rest = url.split("://", 1)[-1]
        self.secrets.update(p for p in re.split(r"[/@?&=:]", rest) if len(p) >= 6)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            msg = record.getMessage()
            for s in self.secrets:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, ()
        return True


REDACT = _Redact()
for _name in ("apprise", "urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry", "requests"):
    logging.getLogger(_name).addFilter(REDACT)  # urllib3 logs the request line, bot key and all


class AppriseSender:
    """Sends through apprise. ``endpoint`` in a channel replaces the service's https://host (an
    intranet relay, or a local receiver in tests); bbt keeps the rate limit itself."""

    def __init__(self) -> None:
        self._objs: dict[tuple[str, str], Any] = {}

    def _plugin(self, channel: dict[str, Any]) -> Any:
        key = (channel["url"], channel.get("endpoint") or "")
        obj = self._objs.get(key)
        if obj is None:
            apprise = config.load_apprise()
            REDACT.add_url(channel["url"])
            obj = apprise.Apprise.instantiate(channel["url"])
            if obj is None:
                raise ValueError("invalid apprise URL")
            obj.request_rate_per_sec = 0
            endpoint = channel.get("endpoint")
            if endpoint:
                for attr in ("api_url", "notify_url"):
                    value = getattr(obj, attr, None)
                    if isinstance(value, str) and value.startswith("https://"):
                        setattr(obj, attr, endpoint.rstrip("/") + "/" + value.split("/", 3)[3])
            self._objs[key] = obj
        return obj

    def send(self, channel: dict[str, Any], body: str) -> bool:
        return bool(self._plugin(channel).notify(body=body, title=""))


class RateLimiter:
    """At most ``rate`` messages per ``window_s`` per channel (sliding window)."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self.sent: dict[str, deque[float]] = defaultdict(deque)

    def available(self, key: str, rate: int | None, now: float) -> int:
        if rate is None:
            return 1 << 30
        q = self.sent[key]
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return max(0, rate - len(q))

    def take(self, key: str, now: float) -> None:
        self.sent[key].append(now)


class Dispatcher:
    def __init__(self, db: Database, sender: Sender | None = None, clock: Callable[[], float] = time.time,
                 base_url: str | None = None, rate_window_s: float = 60.0,
                 gate: Callable[[], bool] = lambda: True) -> None:
        self.db = db
        self.sender = sender or AppriseSender()
        self.clock = clock
        self.base_url = base_url
        self.limiter = RateLimiter(rate_window_s)
        self.gate = gate
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent_messages = 0

    # -- one pass ---------------------------------------------------------------
    def run_once(self) -> int:
        now = self.clock()
        due = self.db.query("SELECT * FROM alert_notices WHERE status = 'pending' AND due <= ? "
                            "ORDER BY due, id LIMIT 5000", (now,))
        by_school: dict[str, list[Row]] = defaultdict(list)
        for n in due:
            by_school[n["school"]].append(n)
        sent = 0
        for school, notices in by_school.items():
            sent += self._school(school, notices, now)
        return sent

    def _school(self, school: str, notices: list[Row], now: float) -> int:
        db = self.db
        cfg = config.load(db, school)
        tz = school_tz(db, school)
        local = datetime.fromtimestamp(now, tz)
        sil = store.silences(db, school, now)
        ids = sorted({n["alert_id"] for n in notices})
        alerts = {a["id"]: a for a in db.query(
            f"SELECT * FROM alerts WHERE id IN ({','.join('?' for _ in ids)})", ids)}
        kinds = sorted({str(r.get("source_kind")) for r in cfg.get("inhibit", [])}) or [""]
        sources = db.query(f"SELECT * FROM alerts WHERE school = ? AND state IN ('firing', 'acknowledged') "
                           f"AND kind IN ({','.join('?' for _ in kinds)})", (school, *kinds))
        ready: dict[str, dict[str, list[tuple[Row, Row]]]] = defaultdict(lambda: defaultdict(list))
        for n in notices:
            a = alerts.get(n["alert_id"])
            verdict = self._verdict(n, a, cfg, local, sil, sources, now)
            if verdict is None:
                assert a is not None
                ready[n["channel"]][n["group_key"]].append((n, a))
            elif verdict[0] == "hold":
                db.execute("UPDATE alert_notices SET due = ?, note = ? WHERE id = ?",
                           (verdict[1], verdict[2], n["id"]))
            else:
                db.execute("UPDATE alert_notices SET status = ?, note = ? WHERE id = ?",
                           (verdict[0], verdict[2], n["id"]))
        sent = 0
        for channel, groups in ready.items():
            sent += self._deliver(school, channel, cfg, groups, tz, now)
        return sent

    def _verdict(self, n: Row, a: Row | None, cfg: dict[str, Any], local: datetime, sil: list[dict[str, Any]],
                 sources: list[Row], now: float) -> tuple[str, float, str] | None:
        """None: send now; ("hold", due, why): later; (status, 0, why): never."""
        if a is None:
            return ("suppressed", 0, "alert gone")
        if n["kind"] in FIRING_KINDS and a["state"] == "resolved":
            return ("suppressed", 0, "resolved before it was sent")
        if n["kind"] in ("repeat", "escalation") and a["state"] == "acknowledged":
            return ("suppressed", 0, "acknowledged")
        if n["kind"] == "resolved":
            told = self.db.query("SELECT status FROM alert_notices WHERE alert_id = ? AND channel = ? AND kind IN "
                                 "('firing', 'repeat', 'escalation') AND status IN ('sent', 'pending')",
                                 (a["id"], n["channel"]))
            if any(r["status"] == "pending" for r in told):
                return ("hold", now + 1, "waiting for the firing notice")
            if not told:
                return ("suppressed", 0, "its firing was never sent")
        labels = labels_of(a)
        until = routing.silenced_until(labels, sil, now)
        if until is not None:
            return ("hold", until, "silenced")
        if routing.inhibited(labels, sources, cfg.get("inhibit", [])):
            return ("hold", now + INHIBIT_RECHECK_S, "inhibited")
        if routing.held_by_quiet(a["severity"], local, cfg.get("quiet_hours")):
            return ("hold", routing.quiet_end(local, cfg["quiet_hours"]).timestamp(), "quiet hours")
        if n["channel"] not in cfg["channels"]:
            return ("failed", 0, "channel not configured")
        return None

    def _deliver(self, school: str, channel: str, cfg: dict[str, Any], groups: dict[str, list[tuple[Row, Row]]],
                 tz: Any, now: float) -> int:
        ch = cfg["channels"][channel]
        key = f"{ch['url']}|{ch.get('endpoint') or ''}"
        tokens = self.limiter.available(key, config.rate_per_min(ch), now)
        if tokens <= 0:
            return 0
        batches = list(groups.values())
        if len(batches) > tokens:  # excess merged into the last message, never dropped
            batches = batches[:tokens - 1] + [[x for g in batches[tokens - 1:] for x in g]]
        person = str(ch.get("person") or channel)
        sent = 0
        for items in batches:
            body = messages.compose([(n["kind"], a) for n, a in items], tz, now,
                                    lambda ids: self.ack_link(cfg, ids, person),
                                    messages.MAX_BYTES if config.rate_per_min(ch) else 8000,
                                    lambda ids: self.review_link(cfg, school, ids, person))
            ok = self._send(school, channel, ch, body)
            ids = [n["id"] for n, _ in items]
            marks = ",".join("?" for _ in ids)
            if ok:
                self.limiter.take(key, self.clock())
                sent += 1
                self.db.execute(f"UPDATE alert_notices SET status = 'sent', sent = ? WHERE id IN ({marks})",
                                (now, *ids))
                alert_ids = sorted({a["id"] for n, a in items if n["kind"] in FIRING_KINDS})
                if alert_ids:
                    self.db.execute(f"UPDATE alerts SET last_notified = ? WHERE id IN "
                                    f"({','.join('?' for _ in alert_ids)})", (now, *alert_ids))
            else:
                attempts = max(n["attempts"] for n, _ in items) + 1
                self.db.execute(f"UPDATE alert_notices SET attempts = attempts + 1, due = ?, note = 'send failed' "
                                f"WHERE id IN ({marks})", (now + min(300.0, 2.0 ** attempts), *ids))
        self.sent_messages += sent
        return sent

    def _send(self, school: str, channel: str, ch: dict[str, Any], body: str) -> bool:
        try:
            ok = self.sender.send(ch, body)
        except Exception as e:  # a channel failing must not stop the others
            log.warning("alert channel %s/%s failed: %s", school, channel, type(e).__name__)
            return False
        if not ok:
            log.warning("alert channel %s/%s did not accept the message; will retry", school, channel)
        return ok

    def ack_link(self, cfg: dict[str, Any], ids: list[int], person: str) -> str | None:
        base = cfg.get("base_url") or self.base_url
        if not base or not ids or len(ids) > 60:
            return f"{base.rstrip('/')}/faults/" if base else None  # the dashboard's 故障与告警 page
        token = store.sign(store.secret(self.db), ids, person)
        return (f"{base.rstrip('/')}/alerts/ack?ids={','.join(map(str, ids))}&by={quote(person)}&t={token}")

    def review_link(self, cfg: dict[str, Any], school: str, fault_ids: list[int], person: str) -> str | None:
        """The signed link to review these register entries, for a person who may review them."""
        base = cfg.get("base_url") or self.base_url
        if not base or not fault_ids or len(fault_ids) > 60 or not fault_review.may_review(self.db, person, school):
            return None
        token = store.sign_review(store.secret(self.db), fault_ids, person)
        return f"{base.rstrip('/')}/faults/review?ids={','.join(map(str, fault_ids))}&by={quote(person)}&t={token}"

    # -- thread -------------------------------------------------------------------
    def _run(self, poll_s: float) -> None:
        while not self._stop.is_set():
            self.wake.wait(poll_s)
            self.wake.clear()
            if self._stop.is_set():
                break
            try:
                if self.gate():
                    self.run_once()
            except Exception:
                log.exception("alert dispatch pass failed")

    def start(self, poll_s: float = 0.2) -> None:
        self._thread = threading.Thread(target=self._run, args=(poll_s,), name="bbt-alert-send", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread:
            self._thread.join(15)
