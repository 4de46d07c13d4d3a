"""Semester stocktake pages (学期清查盘点, issue 18): start one, tick items room by room (or confirm
them by scanning their labels: dashboard.assets.confirm), finish and freeze it, export it (XLSX
through collector.school.stocktake_export, a print view). The rules are collector.school.stocktake's."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from collector.devices.registry import school_tz
from collector.school import assets, stocktake, stocktake_export
from dashboard import audit, get_db
from dashboard.access import ASSET_EDITORS, ASSET_READERS, allow, current_scope
from dashboard.assets import may_edit
from dashboard.auth import client_ip
from dashboard.overview import page_school

bp = Blueprint("stocktakes", __name__, url_prefix="/assets/stocktakes")


def visible(stocktake_id: int) -> dict[str, Any]:
    st = stocktake.get(get_db(), stocktake_id)
    if st is None or not current_scope().user.may_see_school(st["school"]):
        abort(404)
    return st


def _local(school: str) -> Any:
    from datetime import datetime

    tz = school_tz(get_db(), school)
    return lambda t: datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M") if t else ""


@bp.get("/")
@allow(*ASSET_READERS)
def index() -> Any:
    s = current_scope()
    school = page_school(s)
    db = get_db()
    return render_template("assets/stocktakes.html", school=school, may_edit=may_edit(s),
                           rows=stocktake.list_stocktakes(db, school) if school else [],
                           local=_local(school) if school else str)


@bp.post("/")
@allow(*ASSET_EDITORS)
def start() -> Any:
    s = current_scope()
    school = page_school(s)
    if not school:
        abort(400, description="missing school")
    db = get_db()
    try:
        sid = stocktake.start(db, school, request.form.get("name", ""), s.user.name)
    except stocktake.StocktakeError as e:
        flash(str(e), "error")
        return redirect(url_for("stocktakes.index", school=school))
    audit.record(db, s.user.name, "stocktake.start", school, str(sid), client_ip(), name=request.form.get("name"))
    flash(_("盘点已开始：扫描设备标签上的二维码，或在清单中勾选"), "ok")
    return redirect(url_for("stocktakes.show", stocktake_id=sid))


@bp.get("/<int:stocktake_id>")
@allow(*ASSET_READERS)
def show(stocktake_id: int) -> Any:
    st = visible(stocktake_id)
    db = get_db()
    room = request.args.get("room") or None
    res = stocktake.result(db, stocktake_id)
    rows = [r for r in res["items"] if not room or r["room"] == room]
    rooms = sorted({r["room"] or "" for r in res["items"]})
    return render_template("assets/stocktake.html", st=st, res=res, rows=rows, room=room, rooms=rooms,
                           may_edit=may_edit(current_scope()) and st["finished"] is None, ITEMS=assets.ITEMS,
                           STATUS_LABELS=stocktake.STATUS_LABELS, CHANGE_LABELS=stocktake.CHANGE_LABELS,
                           diffs=stocktake.differences(db, st) if st["finished"] else [],
                           prev=stocktake.previous(db, st), local=_local(st["school"]))


@bp.post("/<int:stocktake_id>/confirm")
@allow(*ASSET_EDITORS)
def tick(stocktake_id: int) -> Any:
    """Confirm the ticked items (found in their ledger room, or the room the form names)."""
    s = current_scope()
    st = visible(stocktake_id)
    db = get_db()
    ids = [int(x) for x in request.form.getlist("asset") if x.isdigit()]
    found = request.form.get("found_room") or None
    try:
        with db.transaction():  # all ticked items or none
            for asset_id in ids:
                stocktake.confirm(db, stocktake_id, asset_id, s.user.name, found, via="list")
    except stocktake.StocktakeError as e:
        flash(str(e), "error")
    else:
        if ids:
            audit.record(db, s.user.name, "stocktake.confirm", st["school"], str(stocktake_id), client_ip(),
                         assets=ids, found_room=found, via="list")
            flash(_("已确认 %(n)d 件", n=len(ids)), "ok")
    return redirect(url_for("stocktakes.show", stocktake_id=stocktake_id, room=request.form.get("room") or None))


@bp.post("/<int:stocktake_id>/finish")
@allow(*ASSET_EDITORS)
def finish(stocktake_id: int) -> Any:
    s = current_scope()
    st = visible(stocktake_id)
    db = get_db()
    try:
        stocktake.finish(db, stocktake_id, s.user.name)
    except stocktake.StocktakeError as e:
        flash(str(e), "error")
        return redirect(url_for("stocktakes.show", stocktake_id=stocktake_id))
    res = stocktake.result(db, stocktake_id)
    audit.record(db, s.user.name, "stocktake.finish", st["school"], str(stocktake_id), client_ip(),
                 **res["counts"])
    flash(_("盘点已完成并封存"), "ok")
    return redirect(url_for("stocktakes.show", stocktake_id=stocktake_id))


@bp.get("/<int:stocktake_id>/export.xlsx")
@allow(*ASSET_READERS)
def export(stocktake_id: int) -> Any:
    from urllib.parse import quote

    visible(stocktake_id)
    data, name = stocktake_export.workbook(get_db(), stocktake_id)
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=\"stocktake-{stocktake_id}.xlsx\"; "
                                                    f"filename*=UTF-8''{quote(name)}"})


@bp.get("/<int:stocktake_id>/print")
@allow(*ASSET_READERS)
def print_view(stocktake_id: int) -> Any:
    st = visible(stocktake_id)
    db = get_db()
    return render_template("assets/stocktake_print.html", st=st, res=stocktake.result(db, stocktake_id),
                           diffs=stocktake.differences(db, st), prev=stocktake.previous(db, st), ITEMS=assets.ITEMS,
                           STATUS_LABELS=stocktake.STATUS_LABELS, CHANGE_LABELS=stocktake.CHANGE_LABELS,
                           local=_local(st["school"]))
