"""How certain a lesson's usage figure is (tamper evidence), and flags for data missing in lesson time.

For each lesson and its device:

* ``measured`` (有实测数据): the device's heartbeats cover the lesson (each heartbeat vouches for
  the two heartbeat periods after it); at most 10% of the lesson is uncovered.
* ``device_offline`` (设备离线): the uncovered time falls where the device had said it was going
  off or to sleep (a power "off"/"sleep" event, or a "shutdown" status), until it came back.
* ``agent_gap`` (数据缺失): the device went silent without saying so — the agent was killed or
  stopped, the network or broker was down and the outbox has not delivered yet, or events were
  lost (a seq gap). Such a lesson's "not used" is not proven; the collector also records it as an
  ``info`` fault ``data_missing`` (info: it never excuses a lesson from the denominator, so
  stopping the agent cannot improve anyone's rate).

Pure functions first; the loaders at the bottom read the store.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence
from zoneinfo import ZoneInfo

from collector.db import Database
from collector.lessons.attribution import AWAY_STATUSES

LABELS_ZH = {"measured": "有实测数据", "device_offline": "设备离线", "agent_gap": "数据缺失"}
COVER_PERIODS = 2.0
MAX_UNCOVERED = 0.10
Interval = tuple[float, float]


def _merge(ivs: Sequence[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for s, e in sorted(ivs):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _uncovered(start: float, end: float, covered: Sequence[Interval]) -> list[Interval]:
    out, cur = [], start
    for s, e in covered:
        if e <= cur:
            continue
        if s >= end:
            break
        if s > cur:
            out.append((cur, s))
        cur = max(cur, e)
    if cur < end:
        out.append((cur, end))
    return out


def _overlap(a: Sequence[Interval], b: Sequence[Interval]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


@dataclass(frozen=True)
class DeviceTrace:
    """What the store knows of one device around a day."""
    heartbeats: Sequence[float]        # times, sorted
    off: Sequence[Interval]            # announced off/sleep intervals (merged)

    def coverage(self, heartbeat_s: float) -> list[Interval]:
        return _merge([(t, t + COVER_PERIODS * heartbeat_s) for t in self.heartbeats])


def certainty(start: float, end: float, trace: DeviceTrace, heartbeat_s: float) -> tuple[str, float]:
    """(label, seconds of the lesson with no data that the device did not announce)."""
    holes = _uncovered(start, end, trace.coverage(heartbeat_s))
    missing = sum(e - s for s, e in holes)
    if missing <= MAX_UNCOVERED * (end - start):
        return "measured", 0.0
    unexplained = missing - _overlap(holes, trace.off)
    if unexplained <= MAX_UNCOVERED * (end - start):
        return "device_offline", 0.0
    return "agent_gap", unexplained


def off_intervals(events: Sequence[tuple[float, str, str]], until: float) -> list[Interval]:
    """Announced-off intervals from (t, kind, state) records sorted by time: kind "power" with state
    off/sleep/on/wake, "status" with state shutdown/startup/lost, "heartbeat" (the device is alive)."""
    out: list[Interval] = []
    off_since: float | None = None
    for t, kind, state in events:
        going_off = (kind == "power" and state in ("off", "sleep")) or (kind == "status" and state == "shutdown")
        if going_off:
            if off_since is None:
                off_since = t
        elif off_since is not None and (kind == "heartbeat" or state in ("on", "wake", "startup")):
            out.append((off_since, t))
            off_since = None
    if off_since is not None:
        out.append((off_since, until))
    return _merge(out)


# -- the store ---------------------------------------------------------------------------------

def load_traces(db: Database, school: str, lo: float, hi: float) -> dict[str, DeviceTrace]:
    """Heartbeats and announced-off intervals of every device of a school in [lo, hi)."""
    margin = 12 * 3600.0  # a device switched off in the evening is still "off" the next morning
    recs: dict[str, list[tuple[float, str, str]]] = {}
    hbs: dict[str, list[float]] = {}
    for r in db.query("SELECT device, t, type, CASE WHEN data LIKE '%\"state\":\"off\"%' THEN 'off' "
                      "WHEN data LIKE '%\"state\":\"sleep\"%' THEN 'sleep' WHEN data LIKE '%\"state\":\"on\"%' "
                      "THEN 'on' WHEN data LIKE '%\"state\":\"wake\"%' THEN 'wake' ELSE '' END AS state "
                      "FROM events WHERE school = ? AND type IN ('heartbeat', 'power') AND t >= ? AND t < ? "
                      "AND clock_fault = 0", (school, lo - margin, hi)):
        recs.setdefault(r["device"], []).append((r["t"], r["type"], r["state"]))
        if r["type"] == "heartbeat":
            hbs.setdefault(r["device"], []).append(r["t"])
    for r in db.query("SELECT device, received, reason FROM status_log WHERE school = ? AND received >= ? "
                      "AND received < ?", (school, lo - margin, hi)):
        recs.setdefault(r["device"], []).append((r["received"], "status", r["reason"] or ""))
    stopped: dict[str, list[Interval]] = {}
    for r in db.query("SELECT device, opened_t, cleared_t FROM faults WHERE school = ? AND code = 'agent_stopped' "
                      "AND opened_t < ? AND (cleared_t IS NULL OR cleared_t > ?)", (school, hi, lo - margin)):
        stopped.setdefault(r["device"], []).append((r["opened_t"], r["cleared_t"] or hi))
    return {d: DeviceTrace(sorted(hbs.get(d, [])), subtract(off_intervals(sorted(rs), hi), stopped.get(d, [])))
            for d, rs in recs.items()}


def subtract(ivs: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``ivs`` without ``holes``: an "off" announced by a stopped agent while the PC ran is no excuse."""
    out = list(ivs)
    for hs, he in holes:
        nxt: list[Interval] = []
        for s, e in out:
            if he <= s or hs >= e:
                nxt.append((s, e))
                continue
            if s < hs:
                nxt.append((s, hs))
            if he < e:
                nxt.append((he, e))
        out = nxt
    return out


def _epoch(day: str, hhmm: str, tz: ZoneInfo) -> float:
    y, m, d = (int(x) for x in day.split("-"))
    h, mi = (int(x) for x in hhmm.split(":"))
    return datetime(y, m, d, h, mi, tzinfo=tz).timestamp()


def annotate(db: Database, school: str, rows: list[dict[str, Any]], tz: ZoneInfo, heartbeat_s: float,
             now: float | None = None) -> list[dict[str, Any]]:
    """Add ``certainty`` (+ ``certainty_zh``) to lesson rows (date, start, end HH:MM, device, status)."""
    now = time.time() if now is None else now
    spans = [(_epoch(r["date"], r["start"], tz), _epoch(r["date"], r["end"], tz)) for r in rows]
    if not rows:
        return rows
    traces = load_traces(db, school, min(s for s, _ in spans), max(e for _, e in spans) + 1)
    empty = DeviceTrace([], [])
    for r, (start, end) in zip(rows, spans, strict=True):
        if r.get("status") in ("pending", "no_device", *AWAY_STATUSES) or not r.get("device") or end > now:
            r["certainty"] = None
            r["certainty_zh"] = ""
            continue
        label, gap_s = certainty(start, end, traces.get(r["device"], empty), heartbeat_s)
        r["certainty"] = label
        r["certainty_zh"] = LABELS_ZH[label]
        r["missing_minutes"] = round(gap_s / 60.0, 1)
    return rows


def flag_missing(db: Database, school: str, rows: list[dict[str, Any]], tz: ZoneInfo) -> int:
    """Record each lesson whose data is missing (agent_gap) as a closed ``info`` fault ``data_missing``
    of its device over the lesson, once. Returns how many were recorded now."""
    n = 0
    with db.transaction():
        for r in rows:
            if r.get("certainty") != "agent_gap":
                continue
            start, end = _epoch(r["date"], r["start"], tz), _epoch(r["date"], r["end"], tz)
            if db.query("SELECT 1 AS x FROM faults WHERE school = ? AND device = ? AND code = 'data_missing' "
                        "AND opened_t = ?", (school, r["device"], start)):
                continue
            db.execute("INSERT INTO faults (school, device, code, severity, source, detail, opened_t, cleared_t) "
                       "VALUES (?, ?, 'data_missing', 'info', 'collector', ?, ?, ?)",
                       (school, r["device"], f"上课时段无数据 / no data in lesson time: {r['date']} "
                        f"{r['class']} 第{r['period']}节, {r.get('missing_minutes', 0)} min", start, end))
            n += 1
    return n
