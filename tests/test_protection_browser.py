"""In headless Chromium: the admin lists the teaching sticks on the policy page (phone), and the device
page shows the PC's antivirus and patch state (protocol 1.2)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.devices import policy as pol
from tests.browser import browser, dashboard_site, page_as
from tests.dash import SCHOOL, publish, school_day_at

pytestmark = pytest.mark.browser
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with dashboard_site(tmp_path) as (base, app):
        yield base, app.extensions["bbt_db"]


def test_admin_lists_teaching_sticks_and_the_device_page_shows_protection(live: tuple[str, Any]) -> None:
    base, db = live
    publish(db, "pc-101", [("protection", school_day_at(8, 0), {
        "enabled": False, "products": [{"name": "360杀毒", "enabled": False, "up_to_date": True}],
        "scanner": "ClamAV", "signature_age_d": 2, "pending_security": 0})])
    with browser() as b:
        page = page_as(b, base, "admin", accept_dialogs=True, viewport=PHONE)  # the confirmation question
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
