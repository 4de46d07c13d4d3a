"""In headless Chromium: the admin lists the teaching sticks on the policy page (phone), and the device
page shows the PC's antivirus and patch state (protocol 1.2)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector import policy as pol
from tests.browser import browser, login, serve
from tests.dash import PASSWORD, SCHOOL, USERS, add_users, make_app, publish, school_day_at, seed_school

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    try:
        with serve(app) as base:
            yield base, db
    finally:
        db.close()


def test_admin_lists_teaching_sticks_and_the_device_page_shows_protection(live: tuple[str, Any]) -> None:
    base, db = live
    publish(db, "pc-101", [("protection", school_day_at(8, 0), {
        "enabled": False, "products": [{"name": "360杀毒", "enabled": False, "up_to_date": True}],
        "scanner": "ClamAV", "signature_age_d": 2, "pending_security": 0})])
    with browser() as b:
        page = b.new_page(viewport=PHONE, locale="zh-CN")
        page.on("dialog", lambda d: d.accept())  # the confirmation question
        login(page, base, USERS["admin"][0], PASSWORD)
        page.goto(f"{base}/admin/policy?school={SCHOOL}")
        page.fill("textarea[name=usb_allow_labels]", "教学U盘\n希沃套件")
        page.fill("textarea[name=usb_allow_ids]", "0781:5581")
        page.check("input[name=usb_block]")
        page.click("#policy-form button[type=submit]")
        assert "策略已保存" in page.inner_text(".flash")
        assert page.input_value("textarea[name=usb_allow_labels]") == "教学U盘\n希沃套件"
        assert page.is_checked("input[name=usb_block]")
        assert pol.usb_policy(db, SCHOOL) == {"allow_labels": ["教学U盘", "希沃套件"], "allow_ids": ["0781:5581"],
                                              "block": True}
        page.goto(f"{base}/devices/{SCHOOL}/pc-101")
        section = page.locator("details#protection")
        assert section.get_attribute("open") is not None  # a problem: opened
        text = section.inner_text()
        assert "病毒防护未开启（360杀毒）" in text and "2 天前更新" in text and "ClamAV" in text
