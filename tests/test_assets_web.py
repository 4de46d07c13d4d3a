"""Asset ledger and stocktake on the Flask test client (issue 18): the ``assets`` import, labels whose QR
code decodes to the item's address, a stocktake confirmed through the pages, finished, frozen and
exported (no formula cells), with the differences to the previous stocktake."""
from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import png
import pytest
import zxingcpp

from collector.school import assets, stocktake
from collector.school.import_errors import ImportError_
from collector.school.imports import run_import
from tests.dash import SCHOOL, add_users, make_app, seed_school

LEDGER = """资产编号,品类,教室,楼,型号,序列号,品牌,购置日期,保修截止,供应商,状态,设备
ZC-0101,电脑,A101,A楼,M720t,PC0ABCDE,联想,2024/8/20,2027-08-19,某某科技,在用,pc-101
ZC-0102,一体机,A101,A楼,CB86EA,,希沃,2024-08-20,2029-08-19,,在用,
ZC-0103,音箱,A101,A楼,,,,,,,维修,
ZC-0201,投影仪,A102,A楼,"=HYPERLINK(""http://x"",""y"")",,,,,,在用,
ZC-0901,白板,A102,A楼,,,,,,,报废,
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    app = make_app(str(tmp_path / "bbt.db"), WTF_CSRF_ENABLED=False)
    db = app.extensions["bbt_db"]
    seed_school(db)
    tokens = add_users(db)
    f = tmp_path / "设备清单.csv"
    f.write_text(LEDGER, encoding="utf-8-sig")
    assert run_import(db, "assets", SCHOOL, f) == 5
    yield app, db, {role: f"Bearer {tok}" for role, tok in tokens.items()}
    db.close()


def by_code(db: Any) -> dict[str, dict[str, Any]]:
    return {a["code"]: a for a in assets.list_assets(db, SCHOOL)}


def test_import_fills_the_ledger_and_refuses_a_bad_row(site: Any, tmp_path: Path) -> None:
    _app, db, _h = site
    a = by_code(db)
    assert (a["ZC-0101"]["item"], a["ZC-0101"]["purchase_date"], a["ZC-0101"]["device"]) == ("pc", "2024-08-20",
                                                                                             "pc-101")
    assert a["ZC-0103"]["state"] == "repair" and a["ZC-0901"]["state"] == "scrapped"
    bad = tmp_path / "bad.csv"
    bad.write_text("资产编号,品类,教室\nZC-1,电脑,A101\nZC-2,冰箱,A101\n", encoding="utf-8")
    with pytest.raises(ImportError_) as e:
        run_import(db, "assets", SCHOOL, bad)
    assert "第 3 行" in str(e.value) or "line 3" in str(e.value)
    assert "ZC-1" not in by_code(db)  # nothing of the file applied


def decode_png_data_uri(uri: str) -> str:
    raw = base64.b64decode(uri.split(",", 1)[1])
    w, h, rows, info = png.Reader(file=io.BytesIO(raw)).asDirect()
    planes = info["planes"]
    gray = bytearray()
    for row in rows:
        gray += bytes(row[i] * (255 if info["bitdepth"] == 1 else 1) for i in range(0, w * planes, planes))
    [found] = zxingcpp.read_barcodes(memoryview(bytes(gray)).cast("B", (h, w)))
    return str(found.text)


def test_the_ledger_exports_and_imports_back(site: Any, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    app, db, h = site
    r = app.test_client().get("/assets/export.xlsx", query_string={"school": SCHOOL},
                              headers={"Authorization": h["headteacher"]})
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.data))
    ws = wb.worksheets[0]
    assert not [c.coordinate for row in ws.iter_rows() for c in row if c.data_type == "f"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:3] == ("资产编号", "品类", "教室") and len(rows) == 6
    assert ("ZC-0103", "音箱") == rows[[r[0] for r in rows].index("ZC-0103")][:2]
    out = tmp_path / "back.xlsx"
    out.write_bytes(r.data)
    before = by_code(db)
    run_import(db, "assets", SCHOOL, out)  # the export's columns are the import's
    after = by_code(db)
    assert {k: {**v, "updated": 0, "updated_by": ""} for k, v in after.items()} == \
        {k: {**v, "updated": 0, "updated_by": ""} for k, v in before.items()}


def test_labels_carry_a_qr_code_that_opens_the_item(site: Any) -> None:
    app, db, h = site
    r = app.test_client().get("/assets/labels", query_string={"school": SCHOOL, "room": "A101"},
                              headers={"Authorization": h["maintainer"]})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    labels = re.findall(r'data-url="([^"]+)">\s*<img src="(data:image/png;base64,[^"]+)"', html)
    ids = {a["code"]: a["id"] for a in by_code(db).values()}
    assert sorted(u for u, _ in labels) == sorted(f"http://localhost/assets/{ids[c]}"
                                                  for c in ("ZC-0101", "ZC-0102", "ZC-0103"))
    for url, qr in labels:
        assert decode_png_data_uri(qr) == url


def test_stocktake_through_the_pages_frozen_exported_and_compared(site: Any) -> None:
    from openpyxl import load_workbook

    app, db, h = site
    c = app.test_client()
    ids = {code: a["id"] for code, a in by_code(db).items()}
    m = {"Authorization": h["maintainer"]}
    r = c.post("/assets/stocktakes/", data={"school": SCHOOL, "name": "2026秋季学期期末盘点"}, headers=m)
    assert r.status_code == 302
    st = stocktake.open_stocktake(db, SCHOOL)
    assert st is not None and len(stocktake.items(db, st["id"])) == 4  # the scrapped whiteboard is left out
    page = c.get(f"/assets/{ids['ZC-0102']}", headers=m).get_data(as_text=True)
    assert "盘点确认" in page
    assert "盘点确认" not in c.get(f"/assets/{ids['ZC-0102']}",
                                  headers={"Authorization": h["headteacher"]}).get_data(as_text=True)
    # scanned: the panel where the ledger says, the projector found in another room
    assert c.post(f"/assets/{ids['ZC-0102']}/confirm", data={"found_room": "A101"}, headers=m).status_code == 302
    assert c.post(f"/assets/{ids['ZC-0201']}/confirm", data={"found_room": "A201"}, headers=m).status_code == 302
    # ticked in the list: the PC
    assert c.post(f"/assets/stocktakes/{st['id']}/confirm", data={"asset": [str(ids["ZC-0101"])]},
                  headers=m).status_code == 302
    assert c.post(f"/assets/stocktakes/{st['id']}/finish", headers=m).status_code == 302
    res = stocktake.result(db, st["id"])
    assert [r["code"] for r in res["missing"]] == ["ZC-0103"] and [r["code"] for r in res["moved"]] == ["ZC-0201"]
    with pytest.raises(stocktake.StocktakeError):  # frozen
        stocktake.confirm(db, st["id"], ids["ZC-0103"], "电工张")
    c.post(f"/assets/{ids['ZC-0103']}/confirm", headers=m)
    assert stocktake.result(db, st["id"])["counts"]["missing"] == 1
    actions = [r["action"] for r in db.query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("stocktake.confirm") == 3 and "stocktake.start" in actions and "stocktake.finish" in actions
    x = c.get(f"/assets/stocktakes/{st['id']}/export.xlsx", headers={"Authorization": h["headteacher"]})
    assert x.status_code == 200
    wb = load_workbook(io.BytesIO(x.data))
    assert wb.sheetnames == ["盘点结果", "未找到与位置不符", "与上次比较"]
    cells = [cell for ws in wb.worksheets for row in ws.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    values = [cell.value for cell in cells]
    assert "未找到" in values and "位置不符" in values and "A201" in values
    assert '=HYPERLINK("http://x","y")' in values  # kept as text
    # the next semester: the speakers turn up, the projector is back; differences to the previous one
    st2 = stocktake.start(db, SCHOOL, "2027春季学期期末盘点", "电工张")
    for code in ("ZC-0101", "ZC-0102", "ZC-0103", "ZC-0201"):
        stocktake.confirm(db, st2, ids[code], "电工张")
    stocktake.finish(db, st2, "电工张")
    diffs = {d["code"]: (d["before"], d["after"]) for d in stocktake.differences(db, stocktake.get(db, st2) or {})}
    assert diffs == {"ZC-0103": ("未找到", "A101"), "ZC-0201": ("A201", "A102")}
    printed = c.get(f"/assets/stocktakes/{st2}/print", headers=m).get_data(as_text=True)
    assert "与上次盘点比较" in printed and "ZC-0103" in printed


def test_the_item_form_validates_and_is_audited(site: Any) -> None:
    app, db, h = site
    c = app.test_client()
    a = {"Authorization": h["admin"]}
    bad = c.post("/assets/new", query_string={"school": SCHOOL}, data={"code": "ZC-9", "item": "pc",
                                                                       "purchase_date": "去年"}, headers=a)
    assert bad.status_code == 400 and "购置日期不是日期" in bad.get_data(as_text=True)
    ok = c.post("/assets/new", query_string={"school": SCHOOL}, data={"code": "ZC-9", "item": "controller",
                                                                      "room": "A201", "state": "in_use"}, headers=a)
    assert ok.status_code == 302 and by_code(db)["ZC-9"]["item"] == "controller"
    assert db.query("SELECT target FROM audit WHERE action = 'asset.add'")[0]["target"] == "ZC-9"


def test_every_ledger_label_has_an_english_translation(site: Any) -> None:
    from flask_babel import force_locale, gettext

    from dashboard.assets import CATALOG_LABELS

    app, _db, h = site
    labels = {*assets.ITEMS.values(), *assets.STATES.values(), *assets.FIELD_LABELS.values(),
              *stocktake.STATUS_LABELS.values(), *stocktake.CHANGE_LABELS.values()}
    with app.test_request_context():
        with force_locale("zh"):
            assert labels <= {str(x) for x in CATALOG_LABELS}
        with force_locale("en"):
            assert not [zh for zh in labels if gettext(zh) == zh]
    page = app.test_client().get("/assets/", query_string={"school": SCHOOL},
                                 headers={"Authorization": h["headteacher"], "Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert "Asset ledger" in html and "Interactive panel" in html and "Scrapped" in html
