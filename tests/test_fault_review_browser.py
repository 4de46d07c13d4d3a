"""The one-click review of a fault register entry on the ticket page, in headless Chromium."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.engine import AlertEngine
from tests.browser import browser, dashboard_site, page_as, school_and_users
from tests.dash import USERS, online, publish, school_day_at, school_hours

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    def seed(db: Any) -> None:
        school_and_users(db)
        now = school_day_at(8, 0)
        publish(db, "pc-102", [("fault", now, {"code": "display_missing", "severity": "critical", "state": "raised",
                                               "detail": "HDMI"})], status=online("pc-102", now))
        AlertEngine(db, clock=school_hours).run_once()  # the agent's fault becomes a register entry

    with dashboard_site(tmp_path, seed) as s:
        yield s


def test_maintainer_confirms_an_entry_in_one_click(site: tuple[str, Any]) -> None:
    base, app = site
    db = app.extensions["bbt_db"]
    [ticket] = db.query("SELECT id, fault_id FROM fault_tickets WHERE device = 'pc-102'")
    with browser() as b:
        page = page_as(b, base, "maintainer")
        page.goto(f"{base}/faults/tickets/{ticket['id']}")
        assert "待核实" in page.inner_text("#review-state")
        page.click("#review-confirm")
        assert "已确认影响上课" in page.inner_text(".flash")
        assert "已确认（影响上课）" in page.inner_text("#review-state")
        assert USERS["maintainer"][0] in page.inner_text("#review-state")
        # a headteacher may not review: the register entry shows them no review button
        other = page_as(b, base, "headteacher")
        other.goto(f"{base}/faults/tickets/{ticket['id']}")
        assert other.locator("#review-confirm").count() == 0
    row = db.query("SELECT review, reviewed_by FROM faults WHERE id = ?", (ticket["fault_id"],))[0]
    assert (row["review"], row["reviewed_by"]) == ("confirmed", USERS["maintainer"][0])
    assert db.query("SELECT actor FROM audit WHERE action = 'fault.review'")[0]["actor"] == USERS["maintainer"][0]
