"""The asset ledger (设备清单、账实相符, issue 18): every item of a school's classrooms.

One row per item, keyed by the school's asset code (资产编号). Items come from the ``assets``
import (collector.school.imports), the dashboard's form, or, for a classroom PC, the agent's inventory:
``sync_inventory`` fills the PC's row (maker, model, BIOS and board serial) and records a changed
serial or board as drift (a swapped machine), which the alert engine turns into a ``drift`` alert.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from collector.db import Database, first

# item kind -> Chinese label (the import accepts either)
ITEMS = {"pc": "电脑", "panel": "一体机", "projector": "投影仪", "whiteboard": "白板", "speakers": "音箱",
         "controller": "中控", "other": "其他"}
ITEM_ALIASES = {"计算机": "pc", "主机": "pc", "班班通": "pc", "交互式一体机": "panel", "触控一体机": "panel",
                "投影": "projector", "投影机": "projector", "电子白板": "whiteboard", "音响": "speakers",
                "功放": "speakers", "中控台": "controller", "中控器": "controller"}
STATES = {"in_use": "在用", "repair": "维修", "scrapped": "报废"}
STATE_ALIASES = {"使用": "in_use", "正常": "in_use", "维修中": "repair", "送修": "repair", "已报废": "scrapped"}
# the ledger's editable fields, in form and export order
FIELDS = ("code", "item", "room", "building", "model", "serial", "maker", "purchase_date", "warranty_end",
          "supplier", "state", "device", "note")
FIELD_LABELS = {"code": "资产编号", "item": "品类", "room": "教室", "building": "楼", "model": "型号",
                "serial": "序列号", "maker": "品牌", "board_serial": "主板序列号", "purchase_date": "购置日期",
                "warranty_end": "保修截止", "supplier": "供应商", "state": "状态", "device": "设备", "note": "备注"}
# inventory keys (docs/agent-data-sheet.md) -> ledger columns
HW_KEYS = {"sys_vendor": "maker", "sys_model": "model", "sys_serial": "serial", "board_serial": "board_serial"}
DRIFT_FIELDS = ("serial", "board_serial")  # a change of either is a swapped machine
PLACEHOLDERS = {"", "0", "none", "null", "n/a", "na", "default string", "to be filled by o.e.m.",
                "system serial number", "not specified", "not applicable", "0123456789", "123456789",
                "base board serial number", "chassis serial number", "serial number", "xxxxxxxx"}


def item_code(value: str) -> str | None:
    """The item kind a cell names (English key or Chinese label), or None."""
    v = value.strip()
    if v.lower() in ITEMS:
        return v.lower()
    return next((k for k, zh in ITEMS.items() if zh == v), None) or ITEM_ALIASES.get(v)


def state_code(value: str) -> str | None:
    v = value.strip()
    if not v:
        return "in_use"
    if v.lower() in STATES:
        return v.lower()
    return next((k for k, zh in STATES.items() if zh == v), None) or STATE_ALIASES.get(v)


def clean_serial(value: Any) -> str | None:
    """A hardware string as the ledger keeps it: None for missing values and makers' placeholders."""
    if not isinstance(value, str):
        return None
    v = value.strip()
    return None if v.lower() in PLACEHOLDERS or set(v) <= {"0", " ", "-", "."} else v[:128]


def identity(data: Mapping[str, Any]) -> dict[str, str | None]:
    """The ledger columns an inventory's hardware identity keys fill (None: not reported or unreadable)."""
    return {col: clean_serial(data.get(key)) for key, col in HW_KEYS.items()}


def hardware_changes(stored: Mapping[str, Any], new: Mapping[str, str | None]) -> list[tuple[str, str, str]]:
    """(field, old, new) for a serial or board serial both known and different: the machine was swapped.
    A value that becomes unreadable (an agent no longer running as root) is not a change."""
    return [(f, str(stored[f]), str(new[f])) for f in DRIFT_FIELDS
            if stored.get(f) and new.get(f) and stored[f] != new[f]]


def sync_inventory(db: Database, school: str, device: str, data: Mapping[str, Any], event_id: str,
                   t: float) -> list[tuple[str, str, str]]:
    """Fill the device's PC row from a newest inventory (creating it, code = device id); a changed
    serial or board is recorded in the drift history. Returns the changes recorded."""
    ident = identity(data)
    if not any(ident.values()):
        return []  # not the inventory's first part, or an agent that does not report hardware
    rows = db.query("SELECT * FROM assets WHERE school = ? AND device = ? ORDER BY id LIMIT 1", (school, device))
    if not rows:
        _create_pc(db, school, device, ident, t)
        return []
    row = rows[0]
    changes = hardware_changes(row, ident)
    db.executemany("INSERT INTO drift (school, device, t, field, old_value, new_value, event_id) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)", [(school, device, t, f, old, new, event_id)
                                                    for f, old, new in changes])
    sets = {c: v for c, v in ident.items() if v and v != row[c]}
    if sets:
        db.execute(f"UPDATE assets SET {', '.join(f'{c} = ?' for c in sets)}, updated = ?, updated_by = ? "
                   "WHERE id = ?", (*sets.values(), time.time(), "agent", row["id"]))
    return changes


def _create_pc(db: Database, school: str, device: str, ident: Mapping[str, str | None], t: float) -> None:
    place = db.query("SELECT room, building FROM devices WHERE school = ? AND device = ?", (school, device))
    room, building = (place[0]["room"], place[0]["building"]) if place else (None, None)
    code = device
    if db.query("SELECT 1 AS x FROM assets WHERE school = ? AND code = ?", (school, code)):
        code = f"{device}-pc"
    db.execute("INSERT INTO assets (school, code, item, room, building, model, serial, maker, board_serial, state, "
               "device, updated, updated_by) VALUES (?, ?, 'pc', ?, ?, ?, ?, ?, ?, 'in_use', ?, ?, 'agent')",
               (school, code, room, building, ident["model"], ident["serial"], ident["maker"], ident["board_serial"],
                device, time.time()))


def list_assets(db: Database, school: str, room: str | None = None, building: str | None = None
                ) -> list[dict[str, Any]]:
    where, params = ["school = ?"], [school]
    for col, val in (("room", room), ("building", building)):
        if val:
            where.append(f"{col} = ?")
            params.append(val)
    return db.query(f"SELECT * FROM assets WHERE {' AND '.join(where)} ORDER BY building, room, code",
                    params)


def get_asset(db: Database, asset_id: int) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM assets WHERE id = ?", (asset_id,))


def rooms(db: Database, school: str) -> list[dict[str, Any]]:
    """The (building, room) pairs of the ledger and the device list, for the page's filters."""
    return db.query("SELECT DISTINCT building, room FROM assets WHERE school = ? AND room IS NOT NULL "
                    "UNION SELECT DISTINCT building, room FROM devices WHERE school = ? AND room IS NOT NULL "
                    "ORDER BY building, room", (school, school))


class AssetError(ValueError):
    """A form value that is not valid (the message is for users)."""


def validate(values: Mapping[str, str]) -> dict[str, str | None]:
    """A form's values checked and normalised; raises AssetError naming the field."""
    from collector.school.import_values import parse_date

    out: dict[str, str | None] = {f: (values.get(f) or "").strip() or None for f in FIELDS}
    if not out["code"]:
        raise AssetError("资产编号不能为空 (asset code is required)")
    item = item_code(out["item"] or "")
    if item is None:
        raise AssetError(f"品类不对：{out['item']!r}，应为 {'、'.join(ITEMS.values())}")
    state = state_code(out["state"] or "")
    if state is None:
        raise AssetError(f"状态不对：{out['state']!r}，应为 {'、'.join(STATES.values())}")
    out["item"], out["state"] = item, state
    for f in ("purchase_date", "warranty_end"):
        if out[f] is not None:
            d = parse_date(out[f] or "")
            if d is None:
                raise AssetError(f"{FIELD_LABELS[f]}不是日期：{out[f]!r} (YYYY-MM-DD)")
            out[f] = d
    return out


def save_asset(db: Database, school: str, values: Mapping[str, str | None], who: str,
               asset_id: int | None = None) -> int:
    """Insert or update one item (values from ``validate``); returns its id. A code used by another
    item of the school raises AssetError."""
    clash = db.query("SELECT id FROM assets WHERE school = ? AND code = ?", (school, values["code"]))
    if clash and clash[0]["id"] != asset_id:
        raise AssetError(f"资产编号 {values['code']} 已被占用 (asset code already used)")
    cols = [f for f in FIELDS]
    if asset_id is None:
        db.execute(f"INSERT INTO assets (school, {', '.join(cols)}, updated, updated_by) VALUES "
                   f"(?, {', '.join('?' * len(cols))}, ?, ?)", (school, *(values[c] for c in cols), time.time(), who))
        return int(db.query("SELECT id FROM assets WHERE school = ? AND code = ?", (school, values["code"]))[0]["id"])
    db.execute(f"UPDATE assets SET {', '.join(f'{c} = ?' for c in cols)}, updated = ?, updated_by = ? WHERE id = ?",
               (*(values[c] for c in cols), time.time(), who, asset_id))
    return asset_id
