"""Parsing every import kind (protocol.md §2) into keyed records, validating every row first.

Each parser takes the file's Table and returns Parsed: records by key (the table's primary key
without the school) with the Row each came from. Nothing is written here: collector.school.import_plan
compares the records with the store and applies the difference in one transaction. An error
names file, line and column (collector.school.import_errors).

Calendar files also carry the terms: rows of kind ``term_start`` and ``term_end`` (optional
column ``term`` with its name, e.g. "2026秋季学期"); each term_start pairs with the next term_end.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

import protocol
from collector.school import import_values as v
from collector.school.import_errors import Warning_, msg
from collector.school.tables import Row, Table, col_error

WEEKS = {"all": "all", "": "all", "每周": "all", "全": "all", "全部": "all", "odd": "odd", "单": "odd",
         "单周": "odd", "even": "even", "双": "even", "双周": "even"}
CAL_KINDS = {"holiday": "holiday", "放假": "holiday", "假期": "holiday", "节假日": "holiday", "workday": "workday",
             "上课": "workday", "调休": "workday", "调休上课": "workday", "补课": "workday", "exam": "exam",
             "考试": "exam", "term_start": "term_start", "开学": "term_start", "学期开始": "term_start",
             "term_end": "term_end", "学期结束": "term_end", "放假(学期结束)": "term_end"}

Key = tuple[Any, ...]


@dataclass
class Parsed:
    records: dict[Key, tuple[Any, ...]] = field(default_factory=dict)
    rows: dict[Key, Row] = field(default_factory=dict)
    warnings: list[Warning_] = field(default_factory=list)
    keep: tuple[int, ...] = ()  # value positions of optional columns the file lacks: stored values stay

    def add(self, key: Key, value: tuple[Any, ...], row: Row) -> None:
        self.records[key] = value
        self.rows[key] = row


DEVICE_EXTRA = ("room", "building", "floor", "projector")
# a projector's PJLink address: host name or IPv4, optional :port (docs/agent.md "Projectors")
_PROJECTOR = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?\Z")


def _projector(t: Table, r: Any) -> str | None:
    value = (r.values.get("projector") or "").strip()
    if value and not _PROJECTOR.match(value):
        raise col_error(t.name, r, "projector", f"投影机地址“{value}”应为 IP 或主机名，可加 :端口（如 10.1.3.21 或 "
                        f"10.1.3.21:4352）/ projector address {value!r} must be an IP or host name, optionally :port")
    return value or None


def parse_devices(t: Table) -> Parsed:
    given = set(t.rows[0].values) if t.rows else set()
    out = Parsed(keep=tuple(i + 1 for i, c in enumerate(DEVICE_EXTRA) if c not in given))
    for r in t.rows:
        dev = r.values["device"]
        if not protocol.valid_id(dev):
            raise col_error(t.name, r, "device", msg("bad_device", value=dev, pattern=protocol.ID_PATTERN))
        if (dev,) in out.rows:
            raise col_error(t.name, r, "device", msg("repeats", what=repr(dev), line=out.rows[(dev,)].line))
        klass = v.text(t.name, r, "class")
        out.add((dev,), (klass, r.values.get("room") or None, r.values.get("building") or None,
                         r.values.get("floor") or None, _projector(t, r)), r)
    return out


def parse_bell(t: Table) -> Parsed:
    out = Parsed()
    groups: dict[str, str] = {}  # valid_from -> schedule name
    for r in t.rows:
        period = v.period(t.name, r)
        a, b = v.minutes(t.name, r, "start"), v.minutes(t.name, r, "end")
        if b <= a:
            raise col_error(t.name, r, "end", msg("end_before_start", end=r.values["end"], start=r.values["start"]))
        schedule = r.values.get("schedule", "") or "default"
        vf = v.a_date(t.name, r, "valid_from") if r.values.get("valid_from") else "0001-01-01"
        if groups.setdefault(vf, schedule) != schedule:
            raise col_error(t.name, r, "valid_from", msg("vf_taken", vf=vf, other=groups[vf]))
        if (vf, period) in out.rows:
            raise col_error(t.name, r, "period", msg("repeats", what=f"period {period}",
                                                    line=out.rows[(vf, period)].line))
        out.add((vf, period), (schedule, a, b), r)
    if len(set(groups.values())) > 1 and "0001-01-01" in groups:
        raise col_error(t.name, t.rows[0], "valid_from", msg("vf_needed"))
    _check_overlaps(t, out)
    return out


def _check_overlaps(t: Table, p: Parsed) -> None:
    by_vf: dict[str, list[tuple[int, int, int, Row]]] = {}
    for (vf, period), (_s, a, b) in p.records.items():
        by_vf.setdefault(vf, []).append((a, b, period, p.rows[(vf, period)]))
    for items in by_vf.values():
        items.sort(key=lambda x: (x[0], x[3].line))
        for (_a1, b1, p1, _), (a2, _b2, p2, r2) in zip(items, items[1:], strict=False):
            if a2 < b1:
                raise col_error(t.name, r2, "start", msg("overlap", p1=p1, p2=p2))


def parse_timetable(t: Table) -> Parsed:
    given = set(t.rows[0].values) if t.rows else set()
    # a file without rooms (or groups) keeps the stored ones
    out = Parsed(keep=tuple(i for i, c in ((2, "room"), (3, "group")) if c not in given))
    slots: dict[tuple[str, int, int], dict[str, Row]] = {}
    groups: dict[str, tuple[str, Row]] = {}
    for r in t.rows:
        klass = v.text(t.name, r, "class")
        wd = v.weekday(t.name, r)
        period = v.period(t.name, r)
        teacher, subject = v.text(t.name, r, "teacher"), v.text(t.name, r, "subject")
        weeks = WEEKS.get(r.values.get("weeks", "").strip().lower())
        if weeks is None:
            raise col_error(t.name, r, "weeks", msg("bad_weeks", value=r.values["weeks"]))
        slot = slots.setdefault((klass, wd, period), {})
        clash = [w for w in slot if w == weeks or "all" in (w, weeks)]
        if clash:
            raise col_error(t.name, r, "period" if r.cell is None else "class",
                            msg("slot_taken", klass=klass, wd=wd, period=period, line=slot[clash[0]].line))
        slot[weeks] = r
        group = _teacher_group(t, r, teacher, groups)
        out.add((klass, wd, period, weeks), (teacher, subject, r.values.get("room") or None, group), r)
    return out


def _teacher_group(t: Table, r: Row, teacher: str, seen: dict[str, tuple[str, Row]]) -> str | None:
    """The row's 教研组 (optional); one teacher has one group in a file."""
    group = (r.values.get("group") or "").strip() or None
    if group is None:
        return None
    first = seen.setdefault(teacher, (group, r))
    if first[0] != group:
        raise col_error(t.name, r, "group", msg("group_differs", teacher=teacher, line=first[1].line,
                                                other=first[0], value=group))
    return group


def parse_substitutions(t: Table) -> Parsed:
    out = Parsed()
    for r in t.rows:
        d = v.a_date(t.name, r, "date")
        klass = v.text(t.name, r, "class")
        period = v.period(t.name, r)
        key = (d, klass, period)
        if key in out.rows:
            raise col_error(t.name, r, "period", msg("repeats", what=f"{klass} {d} period {period}",
                                                    line=out.rows[key].line))
        out.add(key, (r.values.get("teacher", ""), r.values.get("subject") or None), r)
    return out


def parse_calendar(t: Table) -> Parsed:
    out = Parsed()
    marks: list[tuple[str, str, Row]] = []
    for r in t.rows:
        d = v.a_date(t.name, r, "date")
        kind = CAL_KINDS.get(r.values.get("kind", "").strip().lower())
        if kind is None:
            raise col_error(t.name, r, "kind", msg("bad_cal_kind", value=r.values.get("kind", "")))
        if kind in ("term_start", "term_end"):
            marks.append((d, kind, r))
            continue
        if ("day", d) in out.rows:
            raise col_error(t.name, r, "date", msg("repeats", what=d, line=out.rows[("day", d)].line))
        follows = None
        if r.values.get("follows_weekday"):
            if kind != "workday":
                raise col_error(t.name, r, "follows_weekday", msg("follows_not_workday"))
            follows = v.weekday(t.name, r, "follows_weekday")
        elif kind == "workday" and date.fromisoformat(d).isoweekday() >= 6:
            raise col_error(t.name, r, "follows_weekday", msg("follows_needed"))
        out.add(("day", d), (kind, follows), r)
    for name, start, end, row in _terms(t, marks):
        out.add(("term", start), (name, end), row)
    return out


def _terms(t: Table, marks: list[tuple[str, str, Row]]) -> list[tuple[str, str, str, Row]]:
    out: list[tuple[str, str, str, Row]] = []
    start: tuple[str, Row] | None = None
    for d, kind, r in sorted(marks, key=lambda m: (m[0], m[1] == "term_start")):
        if kind == "term_start":
            if start is not None:
                raise col_error(t.name, r, "kind", msg("term_no_end", start=start[0]))
            start = (d, r)
        else:
            if start is None:
                raise col_error(t.name, r, "kind", msg("term_no_start", date=d))
            name = start[1].values.get("term") or r.values.get("term") or f"{start[0]}至{d}"
            out.append((name, start[0], d, start[1]))
            start = None
    if start is not None:
        raise col_error(t.name, start[1], "kind", msg("term_no_end", start=start[0]))
    return out


ASSET_VALUES = ("item", "room", "building", "model", "serial", "maker", "purchase_date", "warranty_end", "supplier",
                "state", "device", "note")  # the stored value's order (collector.school.import_plan)


def _asset_value(t: Table, r: Row, col: str) -> Any:
    from collector.school import assets

    val = r.values.get(col, "")
    if col == "item":
        item = assets.item_code(val)
        if item is None:
            raise col_error(t.name, r, col, msg("bad_item", value=val, items="、".join(assets.ITEMS.values())))
        return item
    if col == "state":
        state = assets.state_code(val)
        if state is None:
            raise col_error(t.name, r, col, msg("bad_state", value=val))
        return state
    if col in ("purchase_date", "warranty_end") and val:
        return v.a_date(t.name, r, col)
    if col == "device" and val and not protocol.valid_id(val):
        raise col_error(t.name, r, col, msg("bad_device", value=val, pattern=protocol.ID_PATTERN))
    return val or None


def parse_assets(t: Table) -> Parsed:
    """The asset ledger (设备清单), keyed by asset code; optional columns the file lacks keep their values."""
    given = set(t.rows[0].values) if t.rows else set()
    out = Parsed(keep=tuple(i for i, c in enumerate(ASSET_VALUES) if c not in given and c not in ("item", "room")))
    for r in t.rows:
        code = v.text(t.name, r, "asset")
        v.text(t.name, r, "room")
        if (code,) in out.rows:
            raise col_error(t.name, r, "asset", msg("repeats", what=repr(code), line=out.rows[(code,)].line))
        out.add((code,), tuple(_asset_value(t, r, c) for c in ASSET_VALUES), r)
    return out


PARSERS: dict[str, Callable[[Table], Parsed]] = {
    "devices": parse_devices,
    "bell": parse_bell,
    "timetable": parse_timetable,
    "substitutions": parse_substitutions,
    "calendar": parse_calendar,
    "assets": parse_assets,
}
