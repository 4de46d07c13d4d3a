"""Semester stocktakes (学期结束…清查盘点, issue 18): start, confirm items, finish (frozen), compare, export.

Starting copies the school's ledger (items not 报废) into ``stocktake_items``. Each item is then
confirmed where it was found: by scanning its label (the item page) or ticking it in the list. A
finished stocktake is frozen: its rows never change. Its result lists the missing items (not
confirmed) and the moved ones (found in another room), and the differences to the previous
finished stocktake of the school.
"""
from __future__ import annotations

import time
from typing import Any

from collector.db import Database, first


class StocktakeError(ValueError):
    """A stocktake action that is not possible now (the message is for users)."""


def open_stocktake(db: Database, school: str) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM stocktakes WHERE school = ? AND finished IS NULL ORDER BY id DESC LIMIT 1",
                     (school,))


def get(db: Database, stocktake_id: int) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM stocktakes WHERE id = ?", (stocktake_id,))


def list_stocktakes(db: Database, school: str) -> list[dict[str, Any]]:
    return db.query("SELECT s.*, (SELECT COUNT(*) FROM stocktake_items i WHERE i.stocktake_id = s.id) AS items, "
                    "(SELECT COUNT(*) FROM stocktake_items i WHERE i.stocktake_id = s.id AND i.confirmed IS NOT NULL) "
                    "AS confirmed FROM stocktakes s WHERE s.school = ? ORDER BY s.started DESC, s.id DESC", (school,))


def start(db: Database, school: str, name: str, who: str, now: float | None = None) -> int:
    """Start a stocktake of every item not 报废; one open stocktake per school."""
    now = time.time() if now is None else now
    with db.transaction():
        if open_stocktake(db, school) is not None:
            raise StocktakeError("已有一次盘点在进行中，请先完成它 (a stocktake is already open)")
        if not name.strip():
            raise StocktakeError("请填写盘点名称，如 2026秋季学期期末盘点 (a name is required)")
        db.execute("INSERT INTO stocktakes (school, name, started, started_by) VALUES (?, ?, ?, ?)",
                   (school, name.strip()[:100], now, who))
        sid = int(db.query("SELECT MAX(id) AS id FROM stocktakes WHERE school = ?", (school,))[0]["id"])
        db.execute("INSERT INTO stocktake_items (stocktake_id, asset_id, code, item, room, building, model, serial, "
                   "state) SELECT ?, id, code, item, room, building, model, serial, state FROM assets "
                   "WHERE school = ? AND state <> 'scrapped'", (sid, school))
    return sid


def items(db: Database, stocktake_id: int, room: str | None = None) -> list[dict[str, Any]]:
    where: list[str] = ["stocktake_id = ?"]
    params: list[Any] = [stocktake_id]
    if room:
        where.append("room = ?")
        params.append(room)
    return db.query(f"SELECT * FROM stocktake_items WHERE {' AND '.join(where)} ORDER BY building, room, code",
                    params)


def item_of(db: Database, stocktake_id: int, asset_id: int) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM stocktake_items WHERE stocktake_id = ? AND asset_id = ?", (stocktake_id, asset_id))


def confirm(db: Database, stocktake_id: int, asset_id: int, who: str, found_room: str | None = None,
            via: str = "list", now: float | None = None) -> dict[str, Any]:
    """Confirm one item (found in ``found_room``, default its ledger room); a finished stocktake refuses.
    Returns the item's row as it now stands."""
    with db.transaction():
        st = get(db, stocktake_id)
        if st is None:
            raise StocktakeError("没有这次盘点 (no such stocktake)")
        if st["finished"] is not None:
            raise StocktakeError("这次盘点已完成并封存，不能再修改 (the stocktake is finished and frozen)")
        it = item_of(db, stocktake_id, asset_id)
        if it is None:
            raise StocktakeError("这件设备不在本次盘点的清单中（开始盘点后才登记的或已报废）")
        room = (found_room or "").strip() or it["room"]
        db.execute("UPDATE stocktake_items SET confirmed = ?, confirmed_by = ?, found_room = ?, via = ? WHERE id = ?",
                   (time.time() if now is None else now, who, room, via, it["id"]))
        return item_of(db, stocktake_id, asset_id) or it


def finish(db: Database, stocktake_id: int, who: str, now: float | None = None) -> None:
    with db.transaction():
        st = get(db, stocktake_id)
        if st is None or st["finished"] is not None:
            raise StocktakeError("这次盘点已完成 (already finished)")
        db.execute("UPDATE stocktakes SET finished = ?, finished_by = ? WHERE id = ?",
                   (time.time() if now is None else now, who, stocktake_id))


def status(it: dict[str, Any]) -> str:
    """ok (found where the ledger says), moved (found in another room) or missing (not confirmed)."""
    if it["confirmed"] is None:
        return "missing"
    return "moved" if (it["found_room"] or None) != (it["room"] or None) else "ok"


STATUS_LABELS = {"ok": "账实相符", "moved": "位置不符", "missing": "未找到"}


def result(db: Database, stocktake_id: int) -> dict[str, Any]:
    """Counts and the missing and moved items (for an open stocktake: so far)."""
    rows = [{**it, "status": status(it)} for it in items(db, stocktake_id)]
    return {"items": rows, "missing": [r for r in rows if r["status"] == "missing"],
            "moved": [r for r in rows if r["status"] == "moved"],
            "counts": {k: sum(1 for r in rows if r["status"] == k) for k in STATUS_LABELS}}


def previous(db: Database, st: dict[str, Any]) -> dict[str, Any] | None:
    return first(db, "SELECT * FROM stocktakes WHERE school = ? AND finished IS NOT NULL AND started < ? "
                     "ORDER BY started DESC, id DESC LIMIT 1", (st["school"], st["started"]))


def differences(db: Database, st: dict[str, Any]) -> list[dict[str, Any]]:
    """Per asset code, what changed since the previous finished stocktake: new items, items no longer
    in the ledger, and changes of status or room. Empty for a school's first stocktake."""
    prev = previous(db, st)
    if prev is None:
        return []
    old = {r["code"]: r for r in result(db, prev["id"])["items"]}
    new = {r["code"]: r for r in result(db, st["id"])["items"]}
    out = []
    for code in sorted(old.keys() | new.keys()):
        o, n = old.get(code), new.get(code)
        if o is None and n is not None:
            out.append({"code": code, "item": n["item"], "change": "added", "before": "", "after": n["room"] or ""})
        elif n is None and o is not None:
            out.append({"code": code, "item": o["item"], "change": "removed", "before": o["room"] or "", "after": ""})
        elif o is not None and n is not None:
            before, after = _where(o), _where(n)
            if before != after:
                out.append({"code": code, "item": n["item"], "change": "changed", "before": before, "after": after})
    return out


def _where(r: dict[str, Any]) -> str:
    if r["status"] == "missing":
        return STATUS_LABELS["missing"]
    return r["found_room"] or r["room"] or ""


CHANGE_LABELS = {"added": "新增", "removed": "不再在账", "changed": "有变化"}
