"""The fault register (故障登记簿): every fault is a ticket with its repair record.

A fault reported by an agent gets its ticket at the next evaluation pass; a fault a person
registers (a teacher's 报修, a power cut entered afterwards) is written to the ``faults`` table
too, with its severity and times. Either awaits review (待核实): only once a maintainer or admin
confirms it as affecting teaching does it leave lessons out of the usage rates (protocol.md §3,
``review_ticket`` -> collector.rates.fault_review).
"""
from __future__ import annotations

import time
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import protocol
from collector import codes
from collector.db import Database, Row
from collector.devices.registry import iso
from collector.intake.store import open_fault
from collector.lessons.attribution import NEVER_EXCUSES
from collector.rates import fault_review
from common.errors import BbtError

EDITABLE = ("cause", "responsibility", "handling", "repair_record", "parts", "summary")
COLUMNS = [("id", "编号"), ("device", "设备"), ("class", "班级"), ("room", "教室"), ("code", "故障代码"),
           ("title", "故障"), ("severity_zh", "级别"), ("reporter", "报告人"), ("reported", "报告时间"),
           ("summary", "故障现象"), ("cause", "故障原因"), ("responsibility", "责任"), ("handling", "处理情况"),
           ("repair_record", "维修记录"), ("parts", "更换配件"), ("acked_by", "确认人"), ("acked", "确认时间"),
           ("repaired", "修复时间"), ("closed_by", "结单人"), ("closed", "结单时间"), ("review_zh", "核实"),
           ("reviewed_by", "核实人"), ("reviewed", "核实时间"),
           ("todo", "处理建议")]
# the ticket with its fault's review (protocol.md §4 /api/v1/faults: opened, cleared, review)
SELECT = ("SELECT k.*, f.opened_t, f.cleared_t, f.review, f.review_from, f.review_to, f.reviewed_by, f.reviewed_t "
          "FROM fault_tickets k JOIN faults f ON f.id = k.fault_id")


class FaultError(BbtError, ValueError):
    pass


def sync_tickets(db: Database, school: str, now: float) -> int:
    """Open a ticket for every fault of the school that has none yet."""
    rows = db.query("SELECT f.*, d.class, d.room, d.building, d.floor FROM faults f LEFT JOIN devices d "
                    "ON d.school = f.school AND d.device = f.device LEFT JOIN fault_tickets k ON k.fault_id = f.id "
                    "WHERE f.school = ? AND k.id IS NULL", (school,))
    for f in rows:
        source = str(f["source"])
        reporter = source.split(":", 1)[1] if source.startswith("report:") else source  # the dashboard's 报修
        _insert_ticket(db, f, reporter, source.split(":", 1)[0], f["detail"], now)
    # a fault its agent reported cleared counts as repaired then
    db.execute("UPDATE fault_tickets SET repaired_t = (SELECT f.cleared_t FROM faults f WHERE f.id = "
               "fault_tickets.fault_id), updated = ? WHERE school = ? AND repaired_t IS NULL AND EXISTS "
               "(SELECT 1 FROM faults f WHERE f.id = fault_tickets.fault_id AND f.cleared_t IS NOT NULL)",
               (now, school))
    return len(rows)


def _insert_ticket(db: Database, f: Row, reporter: str, source: str, summary: str | None, now: float) -> None:
    db.execute("INSERT INTO fault_tickets (fault_id, school, device, class, room, building, floor, code, severity, "
               "reporter, source, reported_t, summary, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
               "ON CONFLICT (fault_id) DO NOTHING",
               (f["id"], f["school"], f["device"], f.get("class"), f.get("room"), f.get("building"), f.get("floor"),
                f["code"], f["severity"], reporter, source, f["opened_t"], summary, now))


def register_fault(db: Database, school: str, device: str, code: str, severity: str, reporter: str,
                   opened_t: float | None = None, cleared_t: float | None = None, summary: str | None = None,
                   now: float | None = None) -> int:
    """A person's 报修 (or a fault entered afterwards). Returns the ticket id."""
    now = time.time() if now is None else now
    opened_t = now if opened_t is None else opened_t
    if not protocol.valid_id(device):
        raise FaultError(f"device {device!r} must match {protocol.ID_PATTERN}")
    if severity not in protocol.SEVERITIES:
        raise FaultError(f"severity {severity!r} is not one of {', '.join(protocol.SEVERITIES)}")
    if not codes.registerable(code):
        raise FaultError(f"fault code {code!r} is not one a person may register; one of: "
                         f"{', '.join(codes.REGISTERABLE)} (or report_ + {', '.join(codes.REPORT_CODES)})")
    if not (reporter or "").strip():
        raise FaultError("reporter is empty")
    if cleared_t is not None and cleared_t < opened_t:
        raise FaultError("the fault cannot end before it began")
    with db.transaction():
        dev = db.query("SELECT * FROM devices WHERE school = ? AND device = ?", (school, device))
        if not dev:
            raise FaultError(f"no device {device!r} in school {school!r}")
        fid = open_fault(db, school, device, code, severity, "person", summary, opened_t, cleared_t=cleared_t,
                         even_if_open=True)
        f = {"id": fid, "school": school, "device": device, "code": code, "severity": severity, "opened_t": opened_t,
             **{k: dev[0][k] for k in ("class", "room", "building", "floor")}}
        _insert_ticket(db, f, reporter.strip(), "person", summary, now)
        if cleared_t is not None:
            db.execute("UPDATE fault_tickets SET repaired_t = ? WHERE fault_id = ?", (cleared_t, fid))
        return int(db.query("SELECT id FROM fault_tickets WHERE fault_id = ?", (fid,))[0]["id"])


def get_ticket(db: Database, ticket_id: int) -> Row:
    rows = db.query(f"{SELECT} WHERE k.id = ?", (ticket_id,))
    if not rows:
        raise FaultError(f"no fault ticket {ticket_id}")
    return rows[0]


def update_ticket(db: Database, ticket_id: int, fields: dict[str, Any], by: str, repaired: bool = False,
                  close: bool = False, now: float | None = None) -> Row:
    """Fill in cause, responsibility, handling, repair record, parts; mark repaired / close the ticket."""
    now = time.time() if now is None else now
    bad = set(fields) - set(EDITABLE)
    if bad:
        raise FaultError(f"cannot set {', '.join(sorted(bad))}; editable: {', '.join(EDITABLE)}")
    with db.transaction():
        t = get_ticket(db, ticket_id)
        sets = [f"{k} = ?" for k in fields] + ["updated = ?"]
        params: list[Any] = [None if v is None else str(v) for v in fields.values()] + [now]
        if t["acked_t"] is None:
            sets += ["acked_t = ?", "acked_by = ?"]
            params += [now, by]
        if (repaired or close) and t["repaired_t"] is None:
            sets.append("repaired_t = ?")
            params.append(now)
            db.execute("UPDATE faults SET cleared_t = ? WHERE id = ? AND cleared_t IS NULL", (now, t["fault_id"]))
        if close:
            sets += ["closed_t = ?", "closed_by = ?"]
            params += [now, by]
        db.execute(f"UPDATE fault_tickets SET {', '.join(sets)} WHERE id = ?", (*params, ticket_id))
        return get_ticket(db, ticket_id)


def review_ticket(db: Database, ticket_id: int, review: str, by: str, from_t: float | None = None,
                  to_t: float | None = None, via: str = "dashboard", now: float | None = None) -> Row:
    """Confirm (影响上课) or reject (误报) the ticket's fault; see collector.rates.fault_review."""
    t = get_ticket(db, ticket_id)
    try:
        fault_review.review_fault(db, int(t["fault_id"]), review, by, from_t, to_t, via, now)
    except fault_review.ReviewError as e:
        raise FaultError(str(e)) from None
    return get_ticket(db, ticket_id)


def list_tickets(db: Database, school: str, since: float | None = None, until: float | None = None,
                 open_only: bool = False, review: str | None = None) -> list[Row]:
    where: list[str] = ["k.school = ?"]
    params: list[Any] = [school]
    if since is not None:
        where.append("k.reported_t >= ?")
        params.append(since)
    if until is not None:
        where.append("k.reported_t < ?")
        params.append(until)
    if open_only:
        where.append("k.closed_t IS NULL")
    if review is not None:
        where.append("f.review = ?")
        params.append(review)
    return db.query(f"{SELECT} WHERE {' AND '.join(where)} ORDER BY k.reported_t DESC, k.id DESC", params)


def term_bounds(d: date) -> tuple[date, date]:
    """The school term containing d: autumn (Sep 1 - Feb 14) or spring (Feb 15 - Aug 31)."""
    if date(d.year, 2, 15) <= d < date(d.year, 9, 1):
        return date(d.year, 2, 15), date(d.year, 9, 1)
    start_year = d.year if d.month >= 9 else d.year - 1
    return date(start_year, 9, 1), date(start_year + 1, 2, 15)


def stats(tickets: list[Row]) -> dict[str, Any]:
    """Mean time to acknowledge and to repair (minutes) and faults per device."""
    tta = [t["acked_t"] - t["reported_t"] for t in tickets if t["acked_t"] is not None]
    ttr = [t["repaired_t"] - t["reported_t"] for t in tickets if t["repaired_t"] is not None]
    per_device: dict[str, int] = {}
    for t in tickets:
        per_device[t["device"]] = per_device.get(t["device"], 0) + 1
    return {"tickets": len(tickets), "open": sum(1 for t in tickets if t["closed_t"] is None),
            "mtta_min": round(sum(tta) / len(tta) / 60, 1) if tta else None,
            "mttr_min": round(sum(ttr) / len(ttr) / 60, 1) if ttr else None,
            "per_device": dict(sorted(per_device.items(), key=lambda kv: (-kv[1], kv[0])))}


def _fmt(t: float | None, tz: ZoneInfo) -> str | None:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M") if t is not None else None


def ticket_view(t: Row, tz: ZoneInfo) -> dict[str, Any]:
    review = t.get("review") or "pending"
    entry = codes.fault(t["code"])
    return {**t, "title": entry.zh, "title_en": entry.en, "todo": entry.todo_zh,
            "severity_zh": codes.SEVERITY_ZH.get(t["severity"], t["severity"]), "reported": _fmt(t["reported_t"], tz),
            "acked": _fmt(t["acked_t"], tz), "repaired": _fmt(t["repaired_t"], tz), "closed": _fmt(t["closed_t"], tz),
            "opened": iso(t.get("opened_t"), tz), "cleared": iso(t.get("cleared_t"), tz), "review": review,
            "review_zh": fault_review.REVIEW_ZH.get(review, review), "reviewed": _fmt(t.get("reviewed_t"), tz),
            "review_from": iso(t.get("review_from"), tz), "review_to": iso(t.get("review_to"), tz),
            "excusable": t["code"] not in NEVER_EXCUSES}


def export_xlsx(tickets: list[Row], tz: ZoneInfo, path: str, title: str = "故障登记簿") -> None:
    """The register as a workbook (collector.sheets: agent strings such as a fault's detail are
    written as text, never as formulas; frozen header, widths, A4 landscape)."""
    from openpyxl import Workbook

    from collector import sheets

    stamp = f"导出于 {datetime.now(tz).strftime('%Y-%m-%d %H:%M')}"
    wb = Workbook()
    ws = wb.active
    ws.title = title
    views = [ticket_view(t, tz) for t in tickets]
    sheets.table_sheet(ws, title, stamp, [zh for _, zh in COLUMNS], [[v.get(k) for k, _ in COLUMNS] for v in views],
                       title_row=False, landscape=True)
    s = stats(tickets)
    st = wb.create_sheet("统计")
    for row in (["故障总数", s["tickets"]], ["未结单", s["open"]], ["平均确认时间（分钟）", s["mtta_min"]],
                ["平均修复时间（分钟）", s["mttr_min"]], [], ["设备", "本期故障次数"]):
        st.append(row)
    for dev, n in s["per_device"].items():
        st.append([dev, n])
    sheets.fit_columns(st)
    sheets.page_setup(st, f"{title} · 统计", stamp)
    sheets.save(wb, path)
