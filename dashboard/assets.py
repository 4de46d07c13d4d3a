"""The asset ledger pages (设备清单, issue 18): the list per school, an item's page (what its QR label
opens; it shows 盘点确认 while a stocktake is open), the form, and printable labels with QR codes.
The data and its rules are collector.school.assets'; stocktakes are dashboard.stocktakes'."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

import segno
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from collector.school import assets, stocktake
from collector.school.stocktake_export import ledger_workbook
from dashboard import audit, get_db
from dashboard.access import ASSET_EDITORS, ASSET_READERS, Scope, allow, current_scope
from dashboard.auth import client_ip
from dashboard.overview import page_school

bp = Blueprint("assets", __name__, url_prefix="/assets")
# the ledger's labels (collector.school.assets, collector.school.stocktake) as the catalog knows them; templates show
# them through _(...). tests/test_assets_web.py checks that each of them has an English translation.
CATALOG_LABELS = (_l("电脑"), _l("一体机"), _l("投影仪"), _l("白板"), _l("音箱"), _l("中控"), _l("其他"), _l("在用"),
                  _l("维修"), _l("报废"), _l("资产编号"), _l("品类"), _l("教室"), _l("楼"), _l("型号"), _l("序列号"),
                  _l("品牌"), _l("主板序列号"), _l("购置日期"), _l("保修截止"), _l("供应商"), _l("状态"), _l("设备"),
                  _l("备注"), _l("账实相符"), _l("位置不符"), _l("未找到"), _l("新增"), _l("不再在账"), _l("有变化"))


def may_edit(s: Scope) -> bool:
    return s.user.role in ASSET_EDITORS


def visible_asset(s: Scope, asset_id: int) -> dict[str, Any]:
    """The item, if the user may see its school (404 otherwise: ids are not secrets, but not listed)."""
    a = assets.get_asset(get_db(), asset_id)
    if a is None or not s.user.may_see_school(a["school"]):
        abort(404)
    return a


def item_url(asset_id: int) -> str:
    """The absolute address a label's QR code opens (behind a proxy: BBT_TRUST_PROXY's forwarded host)."""
    return url_for("assets.detail", asset_id=asset_id, _external=True)


def qr_data_uri(url: str) -> str:
    """A PNG QR code (error correction M: a scuffed label still scans) as a data: URI (the CSP allows them)."""
    return str(segno.make(url, error="m").png_data_uri(scale=4, border=2))


@bp.get("/")
@allow(*ASSET_READERS)
def index() -> Any:
    s = current_scope()
    school = page_school(s)
    db = get_db()
    room, building = request.args.get("room") or None, request.args.get("building") or None
    rows = assets.list_assets(db, school, room, building) if school else []
    return render_template("assets/index.html", school=school, rows=rows, room=room, building=building,
                           rooms=assets.rooms(db, school) if school else [], may_edit=may_edit(s),
                           open_st=stocktake.open_stocktake(db, school) if school else None,
                           ITEMS=assets.ITEMS, STATES=assets.STATES)


@bp.get("/<int:asset_id>")
@allow(*ASSET_READERS)
def detail(asset_id: int) -> Any:
    s = current_scope()
    a = visible_asset(s, asset_id)
    db = get_db()
    st = stocktake.open_stocktake(db, a["school"])
    st_item = stocktake.item_of(db, st["id"], asset_id) if st else None
    return render_template("assets/item.html", a=a, st=st, st_item=st_item, may_edit=may_edit(s),
                           qr=qr_data_uri(item_url(asset_id)), url=item_url(asset_id), ITEMS=assets.ITEMS,
                           STATES=assets.STATES, LABELS=assets.FIELD_LABELS,
                           status=stocktake.status(st_item) if st_item else None,
                           STATUS_LABELS=stocktake.STATUS_LABELS, rooms=assets.rooms(db, a["school"]))


def _form(school: str, a: dict[str, Any] | None) -> Any:
    s = current_scope()
    db = get_db()
    if request.method == "POST":
        try:
            values = assets.validate(request.form)
            with db.transaction():
                asset_id = assets.save_asset(db, school, values, s.user.name, a["id"] if a else None)
        except assets.AssetError as e:
            flash(str(e), "error")
            return render_template("assets/form.html", a={**(a or {}), **request.form.to_dict()}, school=school,
                                   ITEMS=assets.ITEMS, STATES=assets.STATES, LABELS=assets.FIELD_LABELS), 400
        audit.record(db, s.user.name, "asset.edit" if a else "asset.add", school, values["code"], client_ip(),
                     **{k: v for k, v in values.items() if v is not None and k != "code"})
        flash(_("已保存"), "ok")
        return redirect(url_for("assets.detail", asset_id=asset_id))
    return render_template("assets/form.html", a=a or {"state": "in_use"}, school=school, ITEMS=assets.ITEMS,
                           STATES=assets.STATES, LABELS=assets.FIELD_LABELS)


@bp.route("/new", methods=["GET", "POST"])
@allow(*ASSET_EDITORS)
def new() -> Any:
    school = page_school(current_scope())
    if not school:
        abort(400, description="missing query parameter: school")
    return _form(school, None)


@bp.route("/<int:asset_id>/edit", methods=["GET", "POST"])
@allow(*ASSET_EDITORS)
def edit(asset_id: int) -> Any:
    a = visible_asset(current_scope(), asset_id)
    return _form(a["school"], a)


@bp.post("/<int:asset_id>/confirm")
@allow(*ASSET_EDITORS)
def confirm(asset_id: int) -> Any:
    """盘点确认 from the item's page (the phone that scanned its label)."""
    s = current_scope()
    a = visible_asset(s, asset_id)
    db = get_db()
    st = stocktake.open_stocktake(db, a["school"])
    if st is None:
        flash(_("现在没有进行中的盘点"), "error")
        return redirect(url_for("assets.detail", asset_id=asset_id))
    try:
        it = stocktake.confirm(db, st["id"], asset_id, s.user.name, request.form.get("found_room"), via="scan")
    except stocktake.StocktakeError as e:
        flash(str(e), "error")
        return redirect(url_for("assets.detail", asset_id=asset_id))
    audit.record(db, s.user.name, "stocktake.confirm", a["school"], a["code"], client_ip(), stocktake=st["id"],
                 found_room=it["found_room"], via="scan")
    flash(_("已盘点确认：%(code)s", code=a["code"]) if stocktake.status(it) == "ok" else
          _("已盘点确认：%(code)s（位置不符：在 %(room)s）", code=a["code"], room=it["found_room"]), "ok")
    return redirect(url_for("assets.detail", asset_id=asset_id))


@bp.get("/export.xlsx")
@allow(*ASSET_READERS)
def export() -> Any:
    school = page_school(current_scope())
    if not school:
        abort(400, description="missing query parameter: school")
    data, name = ledger_workbook(get_db(), school)
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=\"assets-{school}.xlsx\"; "
                                                    f"filename*=UTF-8''{quote(name)}"})


@bp.get("/labels")
@allow(*ASSET_READERS)
def labels() -> Any:
    """An A4 sheet of labels (3 × 8) for a room, a building or the whole school."""
    s = current_scope()
    school = page_school(s)
    room, building = request.args.get("room") or None, request.args.get("building") or None
    rows = assets.list_assets(get_db(), school, room, building) if school else []
    cards = [{**a, "qr": qr_data_uri(item_url(a["id"])), "url": item_url(a["id"])} for a in rows
             if a["state"] != "scrapped"]
    return render_template("assets/labels.html", school=school, cards=cards, room=room, building=building,
                           ITEMS=assets.ITEMS)
