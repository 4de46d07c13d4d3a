"""The teacher table on a phone (390x844) in headless Chromium: search, 只看未达标, grouping and paging
by its own form and links, no console error, no failed request, nothing wider than the screen."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, login, serve
from tests.dash import PASSWORD, make_app
from tests.helpers import ROOT
from tests.usage_big import WEEK, S, seed

pytestmark = pytest.mark.browser
ARTIFACTS = Path(ROOT) / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    from dashboard.users import add_user

    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed(db, tmp_path)
    add_user(db, "boss", "headteacher", PASSWORD, S, None, must_change=False)
    try:
        with serve(app) as base:
            yield base
    finally:
        db.close()


def rows(page: Any) -> list[str]:
    return page.eval_on_selector_all("#rates tbody tr:not(.group) td:first-child", "els => els.map(e => e.innerText)")


def test_teacher_table_on_a_phone(site: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with browser() as b:
        page = b.new_context(viewport=PHONE, locale="zh-CN").new_page()
        page.on("console", lambda m: problems.append(f"console {m.text} {m.location.get('url')}")
                if m.type == "error" else None)
        # a request the browser itself cancelled because the page moved on (net::ERR_ABORTED: e.g. the
        # favicon of a page left at once) is no broken resource; a missing one shows as a 404 below
        page.on("requestfailed", lambda r: problems.append(f"failed {r.url} {r.failure}")
                if r.failure != "net::ERR_ABORTED" else None)
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        login(page, site, "boss", PASSWORD)
        page.goto(f"{site}/usage/teachers?school={S}&week={WEEK}")
        assert "未达标教师 36 人（共 72 人）" in page.inner_text("#counts")
        assert len(rows(page)) == 50
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        label = page.evaluate("echarts.getInstanceByDom(document.getElementById('trend-chart'))"
                              ".getOption().series[0].markLine.label")
        assert label["position"] == "insideEndTop" and label["formatter"] == "达标线 60%"  # drawn inside the chart
        page.screenshot(path=str(ARTIFACTS / "usage-teachers-phone.png"), full_page=False)

        page.click("a[rel=next]")
        assert "page=2" in page.url and len(rows(page)) == 22

        page.fill("input[name=q]", "教师07")
        page.press("input[name=q]", "Enter")
        page.wait_for_url("**q=*")
        assert rows(page) == ["教师07"] and "page=" not in page.url  # a new search starts on page 1

        page.fill("input[name=q]", "")
        page.check("input[name=below]")
        page.select_option("select[name=group]", "grade")
        page.click("#table-filter button[type=submit]")
        page.wait_for_url("**group=grade*")
        assert "below=1" in page.url
        headings = page.eval_on_selector_all("#rates tr.group th", "els => els.map(e => e.innerText)")
        assert [h.split()[0] for h in headings] == ["七年级", "八年级", "高一"]
        assert len(rows(page)) == 36 and page.locator("#rates .chip.in_use").count() == 0
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "usage-teachers-phone-grouped.png"), full_page=True)

        page.goto(page.url)  # the filtered page is a shareable URL
        assert len(rows(page)) == 36

        page.goto(f"{site}/usage/publish?school={S}&week={WEEK}")
        assert "未公布" in page.inner_text("#week-state")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(ARTIFACTS / "usage-publish-phone.png"), full_page=True)
    assert not problems, problems
