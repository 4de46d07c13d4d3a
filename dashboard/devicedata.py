"""What the device detail page shows, read from the store (no Flask here).

The status timeline is built from the status log (online/offline) and session events
(in use), as segments per day that the page draws as bars.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from collector.db import Database
from collector.lessons.attribution import epoch_of
from collector.rates import queries


def status_changes(db: Database, school: str, device: str, since: float) -> list[dict]:
    """Status messages since ``since`` plus the last one before it (the state at the start)."""
    rows = queries.status_log(db, school, device, since)
    for r in rows:  # the device's own time stamp when it has a sane one, else when it arrived
        r["at"] = r["t"] if r["t"] is not None and r["t"] <= r["received"] + 300 else r["received"]
    return rows


def sessions(db: Database, school: str, device: str, since: float, until: float) -> list[tuple[float, float]]:
    """(start, end) epoch pairs of in-use sessions overlapping [since, until]; an unended one runs to the
    device's last heartbeat (protocol.md §3)."""
    out: list[tuple[float, float]] = []
    open_starts: dict[str, float] = {}
    for t, d in queries.session_events(db, school, device, since - 86400, until):
        if d.get("state") == "start":
            open_starts[str(d.get("session_id"))] = t
        elif d.get("state") == "end":
            start = open_starts.pop(str(d.get("session_id")), None)
            out.append((epoch_of(d.get("start")) or start or t, epoch_of(d.get("end")) or t))
    if open_starts:
        last = queries.last_heartbeat(db, school, device)
        for start in open_starts.values():
            out.append((start, max(start, min(last or start, until))))
    return [(max(s, since), min(e, until)) for s, e in out if e > since and s < until and e > s]




def online_spans(changes: list[dict], since: float, until: float) -> list[tuple[float, float]]:
    """Intervals within [since, until] during which the device was online, from status changes."""
    spans: list[tuple[float, float]] = []
    up: float | None = None
    for c in changes:
        t = max(c["at"], since)
        if c["online"] and up is None:
            up = t
        elif not c["online"] and up is not None:
            spans.append((up, t))
            up = None
    if up is not None:
        spans.append((up, until))
    return [(s, e) for s, e in spans if e > s]


def day_rows(days: list[date], tz: ZoneInfo, online: list[tuple[float, float]],
             in_use: list[tuple[float, float]], start_h: int = 7, end_h: int = 19) -> list[dict[str, Any]]:
    """Per day: segments as (left %, width %) of the school day window [start_h, end_h]."""
    rows = []
    for d in days:
        lo = datetime.combine(d, time(start_h), tz).timestamp()
        hi = datetime.combine(d, time(end_h), tz).timestamp()

        def clip(spans: list[tuple[float, float]], lo: float = lo, hi: float = hi) -> list[tuple[float, float]]:
            out = []
            for s, e in spans:
                s, e = max(s, lo), min(e, hi)
                if e > s:
                    out.append((round(100 * (s - lo) / (hi - lo), 2), round(100 * (e - s) / (hi - lo), 2)))
            return out
        used_min = sum(min(e, hi) - max(s, lo) for s, e in in_use if min(e, hi) > max(s, lo)) / 60
        rows.append({"day": d, "online": clip(online), "in_use": clip(in_use), "in_use_minutes": round(used_min)})
    return rows


def last_days(today: date, n: int = 7) -> list[date]:
    return [today - timedelta(days=i) for i in range(n - 1, -1, -1)]
