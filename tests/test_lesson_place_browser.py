"""Marking a lesson 外出上课 from the lesson list in headless Chromium, and a headteacher reversing it."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, login, serve
from tests.dash import PASSWORD, make_app
from tests.test_usage_week import WED, S, import_school, script
from tests.usage_script import ingest

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    from dashboard.users import add_user

    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    import_school(db, tmp_path)
    assert ingest(db, S, script()) > 100
    add_user(db, "王", "teacher", PASSWORD, S, None, must_change=False)
    hashed = db.query("SELECT password_hash FROM users WHERE name = ?", ("王",))[0]["password_hash"]
    db.execute("INSERT INTO users (name, role, school, class, password_hash, must_change, password_changed, created) "
               "VALUES ('boss', 'headteacher', ?, NULL, ?, 0, 1e10, 0)", (S, hashed))
    try:
        with serve(app) as base:
            yield base, db
    finally:
        db.close()


def test_teacher_marks_a_lesson_away_and_the_headteacher_reverses_it(site: tuple[str, Any]) -> None:
    base, db = site
    with browser() as b:
        page = b.new_context(locale="zh-CN").new_page()
        login(page, base, "王", PASSWORD)
        page.goto(f"{base}/usage/lessons?school={S}&date={WED}")
        row = page.locator("table.lessons tbody tr", has_text="二班")
        assert "未使用" in row.inner_text()
        row.locator("details.mark summary").click()
        row.locator("select[name=kind]").select_option("away")
        row.locator("input[name=reason]").fill("带学生去科技馆")
        row.locator("button[type=submit]").click()
        page.wait_for_selector(".flash.ok")
        row = page.locator("table.lessons tbody tr", has_text="二班")
        assert "带学生去科技馆（王）" in row.inner_text() and "不计入" in row.inner_text()
        assert row.locator("details.mark").count() == 0
        page.context.clear_cookies()
        login(page, base, "boss", PASSWORD)
        page.goto(f"{base}/usage/lessons?school={S}&date={WED}")
        row = page.locator("table.lessons tbody tr", has=page.get_by_role("button", name="撤销标记"))
        assert "二班" in row.inner_text() and "带学生去科技馆（王）" in row.inner_text()
        row.locator("input[name=reason]").fill("核实未外出")
        row.get_by_role("button", name="撤销标记").click()
        page.wait_for_selector(".flash.ok")
        assert page.locator("table.lessons tbody tr", has_text="带学生去科技馆").count() == 0
        assert "未使用" in page.locator("table.lessons tbody tr", has_text="二班").filter(has_text="王").inner_text()
    assert [(r["actor"], r["action"]) for r in db.query("SELECT actor, action FROM audit WHERE action LIKE "
                                                        "'lesson.%' ORDER BY id")] == [
        ("王", "lesson.mark"), ("boss", "lesson.mark_reversed")]
