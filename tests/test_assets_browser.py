"""A semester stocktake on a phone (issue 18), in headless Chromium: the maintainer starts it, confirms
one item on the page its QR label opens (one found in another room), ticks the rest of a room in the
list, finishes it (frozen) and downloads the XLSX beside it."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.school import assets, stocktake
from collector.school.imports import run_import
from tests.browser import browser, dashboard_site, login, school_and_users
from tests.dash import PASSWORD, SCHOOL, USERS

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    def seed(db: Any) -> None:
        school_and_users(db)
        f = tmp_path / "ledger.csv"
        f.write_text("资产编号,品类,教室,楼\nZC-1,电脑,A101,A楼\nZC-2,一体机,A101,A楼\nZC-3,音箱,A101,A楼\n"
                     "ZC-4,中控,A102,A楼\n", encoding="utf-8")
        run_import(db, "assets", SCHOOL, f)

    with dashboard_site(tmp_path, seed) as s:
        yield s


def test_stocktake_on_a_phone(site: tuple[str, Any]) -> None:
    from openpyxl import load_workbook

    base, app = site
    db = app.extensions["bbt_db"]
    ids = {a["code"]: a["id"] for a in assets.list_assets(db, SCHOOL)}
    with browser() as b:
        ctx = b.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True, accept_downloads=True)
        page = ctx.new_page()
        login(page, base, USERS["maintainer"][0], PASSWORD)
        page.goto(f"{base}/assets/stocktakes/?school={SCHOOL}")
        page.fill("#stocktake-name", "2026秋季学期期末盘点")
        page.click("#stocktake-start")
        assert "未找到 4" in page.inner_text("#stocktake-counts")
        # the label's QR code opens the item page: confirm it, found in another room
        page.goto(f"{base}/assets/{ids['ZC-4']}")
        assert page.locator("#stocktake-confirm").is_visible()
        page.fill("#found-room", "A201")
        page.click("#stocktake-confirm")
        assert "位置不符" in page.inner_text(".flash")
        assert "A201" in page.inner_text("#stocktake-status")
        # the rest of room A101, ticked in the list (ZC-3 stays missing)
        page.goto(f"{base}/assets/{ids['ZC-1']}")
        page.click("#stocktake-box a")
        page.check("input[aria-label='ZC-1']")
        page.check("input[aria-label='ZC-2']")
        page.click("#tick-confirm")
        assert "已确认 2 件" in page.inner_text(".flash")
        page.goto(page.url.split("?")[0])
        assert "账实相符 2，位置不符 1，未找到 1" in page.inner_text("#stocktake-counts")
        page.click("#stocktake-finish")
        assert "已完成并封存" in page.inner_text("#stocktake-state")
        assert page.locator("#tick-confirm").count() == 0 and "ZC-3" in page.inner_text("#missing")
        with page.expect_download() as dl:
            page.click("#export-xlsx")
        data = Path(dl.value.path()).read_bytes()
        # the item page shows no 盘点确认 once the stocktake is frozen
        page.goto(f"{base}/assets/{ids['ZC-3']}")
        assert page.locator("#stocktake-confirm").count() == 0
        ctx.close()
    wb = load_workbook(io.BytesIO(data))
    rows = list(wb["未找到与位置不符"].iter_rows(values_only=True))
    assert {r[0] for r in rows} >= {"ZC-3", "ZC-4"}
    st = stocktake.list_stocktakes(db, SCHOOL)[0]
    assert st["finished_by"] == USERS["maintainer"][0] and st["confirmed"] == 3
