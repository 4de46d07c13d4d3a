"""Reviewing a fault register entry (protocol.md §3): confirm it as affecting teaching (影响上课)
for an interval, or reject it (误报). The one function every way in calls (ticket page, API,
the alert message's signed link, CLI), so each review is validated, stored with its history,
audited with its author, and recomputes the lessons it touches in one place.

A review changes which lessons the entry excuses (collector.lessons.attribution). The days covered by
the entry's old and new intervals are marked for recomputation (collector.lessons.usage_marks); a
published week keeps its frozen figures and gets a dated correction (``usage_corrections``):
who reviewed what, when, and the rates before and after.
"""
from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from typing import Any

from collector.audit import audit
from collector.db import Database, Row
from collector.devices.registry import school_tz
from collector.lessons.attribution import NEVER_EXCUSES, Fault
from collector.lessons.school_calendar import iso_week
from collector.lessons.usage_marks import mark_dates
from collector.rates import usage
from common.errors import BbtError

DECISIONS = ("confirmed", "rejected")
REVIEW_ROLES = ("admin", "maintainer")  # who may review (protocol.md §4)
REVIEW_ZH = {"pending": "待核实", "confirmed": "已确认（影响上课）", "rejected": "误报"}
FIGURES = ("scheduled", "used", "rate", "below_threshold", "excluded", "awaiting_review")


class ReviewError(BbtError, ValueError):
    """A review that cannot be applied; the message names what is wrong."""


class NoSuchFault(ReviewError, LookupError):
    pass


def may_review(db: Database, name: str, school: str) -> bool:
    """Whether the (enabled) user ``name`` may review the register entries of ``school``: the one role
    check for the ticket page, the API, and the alert message's signed link."""
    rows = db.query("SELECT role, school FROM users WHERE name = ? AND disabled = 0", (name,))
    return bool(rows) and rows[0]["role"] in REVIEW_ROLES and rows[0]["school"] in (None, school)


def reviewable(code: str) -> bool:
    """Whether an entry with this code could be confirmed (an unclean_shutdown or clock skew cannot)."""
    return code not in NEVER_EXCUSES


def get_fault(db: Database, fault_id: int) -> Row:
    rows = db.query("SELECT * FROM faults WHERE id = ?", (fault_id,))
    if not rows:
        raise NoSuchFault(f"no fault {fault_id}")
    return rows[0]


def fault_of(r: Row) -> Fault:
    return Fault(r["code"], r["severity"], r["opened_t"], r["cleared_t"], r["review"], r["review_from"],
                 r["review_to"])


def check(f: Row, review: str, from_t: float | None, to_t: float | None) -> None:
    """Raise ReviewError naming the problem with this review of entry ``f``."""
    if review not in DECISIONS:
        raise ReviewError(f"review must be one of {', '.join(DECISIONS)}, not {review!r}")
    if review == "rejected" and (from_t is not None or to_t is not None):
        raise ReviewError("from/to are only given when confirming (a rejected entry excuses nothing)")
    if review == "confirmed" and f["code"] in NEVER_EXCUSES:
        raise ReviewError(f"a {f['code']} entry excuses no lesson and cannot be confirmed; register the cause "
                          "(e.g. a power cut during lessons) as its own entry with its times")
    lo = f["opened_t"] if from_t is None else from_t
    hi = f["cleared_t"] if to_t is None else to_t
    if hi is not None and hi <= lo:
        raise ReviewError("to must be after from (the confirmed interval is empty)")


def _dates(db: Database, school: str, spans: list[tuple[float, float | None]], now: float) -> list[date]:
    tz = school_tz(db, school)
    out: set[date] = set()
    for lo, hi in spans:
        d = datetime.fromtimestamp(lo, tz).date()
        last = datetime.fromtimestamp(min(hi if hi is not None else now, now), tz).date()
        while d <= last:
            out.add(d)
            d += timedelta(days=1)
    return sorted(out)


def _published_weeks(db: Database, school: str, days: list[date]) -> list[str]:
    weeks = sorted({iso_week(d) for d in days})
    if not weeks:
        return []
    marks = ", ".join("?" for _ in weeks)
    return [r["week"] for r in db.query(f"SELECT week FROM usage_published WHERE school = ? AND week IN ({marks}) "
                                        "ORDER BY week", (school, *weeks))]


def _live(db: Database, school: str, week: str, now: float) -> dict[tuple[str, str], dict[str, Any]]:
    """The week's rates computed now from the rollup (not the frozen copy)."""
    from collector.lessons.school_calendar import week_days

    days = week_days(week)
    return {(by, r[by]): {k: r[k] for k in FIGURES} for by in ("teacher", "class")
            for r in usage.range_rates(db, school, days[0], days[-1], by, now)}


def _changes(before: dict[tuple[str, str], dict[str, Any]],
             after: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"kind": by, "name": name, "before": before.get((by, name)), "after": after.get((by, name))}
            for by, name in sorted(set(before) | set(after)) if before.get((by, name)) != after.get((by, name))]


def review_fault(db: Database, fault_id: int, review: str, by: str, from_t: float | None = None,
                 to_t: float | None = None, via: str = "dashboard", now: float | None = None) -> Row:
    """Confirm or reject entry ``fault_id`` as ``by``; returns the updated fault row."""
    now = time.time() if now is None else now
    if not (by or "").strip():
        raise ReviewError("the reviewer is unknown")
    f = get_fault(db, fault_id)
    check(f, review, from_t, to_t)
    school = f["school"]
    new = Fault(f["code"], f["severity"], f["opened_t"], f["cleared_t"], review, from_t, to_t)
    days = _dates(db, school, [fault_of(f).span(), new.span()], now)
    weeks = _published_weeks(db, school, days)
    before = {w: _live(db, school, w, now) for w in weeks}
    with db.transaction():
        db.execute("UPDATE faults SET review = ?, review_from = ?, review_to = ?, reviewed_by = ?, reviewed_t = ? "
                   "WHERE id = ?", (review, from_t, to_t, by, now, fault_id))
        db.execute("INSERT INTO fault_reviews (fault_id, school, review, from_t, to_t, previous, by_user, t, via) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (fault_id, school, review, from_t, to_t, f["review"], by,
                                                          now, via))
        mark_dates(db, school, [d.isoformat() for d in days])
        audit(db, "fault.review", f["device"], {"school": school, "fault": fault_id, "code": f["code"],
                                                "review": review, "previous": f["review"], "from": from_t,
                                                "to": to_t, "via": via}, who=by, now=now)
    lo, hi = new.span()
    for w in weeks:
        detail = {"device": f["device"], "code": f["code"], "from": lo, "to": hi, "previous": f["review"],
                  "changes": _changes(before[w], _live(db, school, w, now))}
        db.execute("INSERT INTO usage_corrections (school, week, t, by_user, fault_id, review, detail) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", (school, w, now, by, fault_id, review,
                                                    json.dumps(detail, ensure_ascii=False)))
    return get_fault(db, fault_id)


def history(db: Database, fault_id: int) -> list[Row]:
    """Every review of the entry, oldest first."""
    return db.query("SELECT * FROM fault_reviews WHERE fault_id = ? ORDER BY t, id", (fault_id,))

