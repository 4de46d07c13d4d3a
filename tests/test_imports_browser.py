"""The import page in headless Chromium: download a template, fill it with openpyxl, upload it, see the
preview (what it understood, the difference, the encoding), confirm; errors in Chinese with the user's file name."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from tests.browser import browser, dashboard_site, page_as
from tests.dash import SCHOOL
from tests.helpers import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = Path(ROOT) / "test-artifacts"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with dashboard_site(tmp_path, UPLOAD_DIR=str(tmp_path / "uploads")) as s:
        yield s


def test_template_download_fill_upload_preview_apply(live: tuple[str, Any], tmp_path: Path) -> None:
    base, app = live
    db = app.extensions["bbt_db"]
    db.execute("INSERT INTO timetable (school, class, weekday, period, weeks, teacher, subject) "
               "VALUES (?, '七年级1班', 5, 6, 'all', '旧老师', '美术')", (SCHOOL,))
    with browser() as b:
        page = page_as(b, base, "admin")
        page.goto(base + "/admin/imports")
        with page.expect_download() as dl:
            page.click("a.template-link[data-kind=timetable]")
        template = tmp_path / "downloaded.xlsx"
        dl.value.save_as(template)
        wb = load_workbook(template)
        ws = wb.worksheets[0]
        assert [c.value for c in ws[1]] == ["班级", "星期", "节次", "教师", "科目", "单双周", "教室", "教研组"]
        ws.delete_rows(2, ws.max_row)
        for row in (["七年级1班", "周一", "第1节", "王芳", "语文"], ["七年级1班", "星期二", "2", "李强", "数学"],
                    ["七年级2班", "Wed", "第３节", "王芳", "语文", "单周"]):
            ws.append(row)
        filled = tmp_path / "我的课表.xlsx"
        wb.save(filled)
        page.select_option("select[name=kind]", "timetable")
        page.fill("input[name=school]", SCHOOL)
        page.set_input_files("input[type=file]", str(filled))
        page.click("#import-form button[type=submit]")
        preview = page.inner_text("#preview")
        assert "预览：我的课表.xlsx" in preview and "将导入 3 行" in preview
        assert "新增 3 行，删除 1 行，修改 0 行，不变 0 行" in preview  # 七年级1班's old lesson goes
        understood = page.inner_text("#understood")
        assert "七年级1班 星期一 第1节 语文 王芳" in understood
        assert "七年级2班 星期三 第3节（单周） 语文 王芳" in understood
        assert "七年级1班 星期五 第6节 美术 旧老师" in page.inner_text("ul.diff-removed")
        assert db.query("SELECT COUNT(*) AS n FROM timetable")[0]["n"] == 1  # nothing written before confirming
        shot = ARTIFACTS / "dashboard-import-diff.png"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        page.click("#apply-import")
        assert "已导入 3 行" in page.inner_text(".flash")
        bad = tmp_path / "课表（教务处）.csv"
        bad.write_bytes("班级,星期,节次,教师,科目\n七年级1班,周一,1,王芳,语文\n七年级1班,星期八,2,李强,数学\n".encode("gbk"))
        page.select_option("select[name=kind]", "timetable")
        page.set_input_files("input[type=file]", str(bad))
        page.click("#import-form button[type=submit]")
        err = page.inner_text("#preview .error")
        assert "课表（教务处）.csv：第 3 行，“星期”列：“星期八”不是星期" in err and "提示" in err
        assert page.locator("tr.bad-row").inner_text().startswith("3")
        assert page.locator("#apply-import").count() == 0
    rows = db.query("SELECT class, weekday, period, weeks, teacher FROM timetable ORDER BY class, weekday")
    assert [(r["class"], r["weekday"], r["period"], r["weeks"], r["teacher"]) for r in rows] == [
        ("七年级1班", 1, 1, "all", "王芳"), ("七年级1班", 2, 2, "all", "李强"), ("七年级2班", 3, 3, "odd", "王芳")]
