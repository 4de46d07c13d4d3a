"""The ledger and a stocktake as XLSX workbooks (through collector.sheets, the owner of safe
spreadsheets): the ledger as it stands; a stocktake's result of every item, the missing and moved
items, and the differences to the previous one."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from collector import sheets
from collector.db import Database
from collector.devices.registry import school_tz
from collector.school import stocktake
from collector.school.assets import FIELD_LABELS, FIELDS, ITEMS, STATES, list_assets


def _local(t: float | None, tz: Any) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M") if t else ""


def workbook(db: Database, stocktake_id: int) -> tuple[bytes, str]:
    """(xlsx bytes, file name)."""
    from openpyxl import Workbook

    st = stocktake.get(db, stocktake_id)
    if st is None:
        raise stocktake.StocktakeError("没有这次盘点 (no such stocktake)")
    tz = school_tz(db, st["school"])
    res = stocktake.result(db, stocktake_id)
    state = f"完成于 {_local(st['finished'], tz)}（{st['finished_by']}）" if st["finished"] else "进行中（未完成）"
    title = f"{st['school']} {st['name']} 设备清查盘点"
    date_text = _local(st["finished"] or st["started"], tz)[:10]
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "盘点结果"
    header = ["资产编号", "品类", "楼", "教室（账）", "型号", "序列号", "状态（账）", "盘点结果", "实际所在", "确认人",
              "确认时间"]
    sheets.table_sheet(ws, title, date_text, header, [_row(r, tz) for r in res["items"]],
                       subtitle=f"开始于 {_local(st['started'], tz)}（{st['started_by']}），{state}；"
                                f"共 {len(res['items'])} 件，未找到 {len(res['missing'])} 件，"
                                f"位置不符 {len(res['moved'])} 件", landscape=True)
    diff_ws = wb.create_sheet("未找到与位置不符")
    sheets.table_sheet(diff_ws, f"{title}：未找到与位置不符", date_text, header,
                       [_row(r, tz) for r in res["missing"] + res["moved"]], landscape=True)
    prev = stocktake.previous(db, st)
    cmp_ws = wb.create_sheet("与上次比较")
    sheets.table_sheet(cmp_ws, f"{title}：与上次盘点（{prev['name'] if prev else '无'}）比较", date_text,
                       ["资产编号", "品类", "变化", "上次", "本次"],
                       [[d["code"], ITEMS.get(d["item"], d["item"]), stocktake.CHANGE_LABELS[d["change"]],
                         d["before"], d["after"]] for d in stocktake.differences(db, st)])
    return sheets.workbook_bytes(wb), f"盘点-{st['school']}-{st['name']}.xlsx"


def _row(r: dict[str, Any], tz: Any) -> list[Any]:
    return [r["code"], ITEMS.get(r["item"], r["item"]), r["building"], r["room"], r["model"], r["serial"],
            STATES.get(r["state"], r["state"]), stocktake.STATUS_LABELS[r["status"]], r["found_room"],
            r["confirmed_by"], _local(r["confirmed"], tz)]


def ledger_workbook(db: Database, school: str) -> tuple[bytes, str]:
    """The school's ledger (设备清单) as it stands: (xlsx bytes, file name). Its columns are the import's, so
    an edited copy imports back."""
    from openpyxl import Workbook

    tz = school_tz(db, school)
    today = datetime.now(tz).strftime("%Y-%m-%d")
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "设备清单"
    rows = [[ITEMS.get(a[f], a[f]) if f == "item" else STATES.get(a[f], a[f]) if f == "state" else a[f]
             for f in FIELDS] for a in list_assets(db, school)]
    sheets.table_sheet(ws, f"{school} 设备清单", today, [FIELD_LABELS[f] for f in FIELDS], rows, landscape=True,
                       title_row=False)
    return sheets.workbook_bytes(wb), f"设备清单-{school}-{today}.xlsx"
