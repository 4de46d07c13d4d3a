"""`bbt demo` from the command line, as a visitor meets it: the week is there before the first page,
faults and alerts are waiting for the maintainer, and the pages look right in headless Chromium."""
from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bbt import demo, demo_story
from collector.lessons.school_calendar import iso_week
from tests.brokers import free_port
from tests.browser import browser, login
from tests.helpers import ROOT, bbt_cmd, wait_for

pytestmark = pytest.mark.browser
ROLES = ("admin", "headteacher", "class_teacher", "teacher", "maintainer")


def api(base: str, token: str, path: str) -> Any:
    req = urllib.request.Request(f"{base}/api/v1/{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def school_rate(rows: list[dict[str, Any]]) -> float:
    return sum(r["used"] for r in rows) / sum(r["scheduled"] for r in rows)


def left_on_due(now: datetime) -> bool:
    """Whether the left_on rule can hold now (alerts.rules.left_on): at night, or half an hour after
    the demo school's last lesson (17:10) of a school day."""
    return now.hour >= 22 or now.hour < 6 or (now.weekday() < 5 and (now.hour, now.minute) >= (17, 45))


def check_week(base: str, token: str, now: datetime) -> None:
    last_week = iso_week(now.date() - timedelta(days=7))  # replayed whole, Monday to Friday
    teachers = api(base, token, f"usage/teachers?school={demo.SCHOOL}&week={last_week}")
    assert 0.40 <= school_rate(teachers) <= 0.95, teachers
    below = [r for r in teachers if r["rate"] < 0.60]
    assert below and len(below) < len(teachers) / 2, (len(below), len(teachers))
    assert all(r["below_threshold"] == (r["rate"] < 0.60) for r in teachers)
    this_week = api(base, token, f"usage/teachers?school={demo.SCHOOL}&week={iso_week(now.date())}")
    if sum(r["scheduled"] for r in this_week) >= 100:  # not on a Monday morning: the week so far is there
        assert 0.40 <= school_rate(this_week) <= 0.95


def check_faults_and_alerts(base: str, token: str, now: datetime) -> None:
    faults = api(base, token, f"faults?school={demo.SCHOOL}&state=all")
    open_ = {(f["device"], f["code"]): f for f in faults if f["cleared"] is None}
    assert open_[(demo_story.PROJECTOR_OUT, "display_missing")]["title"] == "投影无信号"
    assert open_[(demo_story.DISK_FILLING, "disk_full")]["title"] == "磁盘已满"
    assert open_[(demo_story.NO_SOUND, "report_no_sound")]["review"] == "pending"
    reviews = {(f["device"], f["review"]) for f in faults}
    assert {(demo_story.CONFIRMED, "confirmed"), (demo_story.FALSE_ALARM, "rejected"),
            (demo_story.PROJECTOR_OUT, "pending")} <= reviews
    alerts = wait_for(lambda: (a := api(base, token, f"alerts?school={demo.SCHOOL}&state=open"))
                      and any(x["kind"] == "software_denied" for x in a) and a, 30, interval=1,
                      what="the live game's alert")
    kinds = {(a["device"], a["kind"]) for a in alerts}
    assert {(demo_story.PROJECTOR_OUT, "fault"), (demo_story.DISK_FILLING, "fault")} <= kinds
    devices = {d["device"]: d for d in api(base, token, f"devices?school={demo.SCHOOL}")}
    assert devices[demo_story.LEFT_ON]["online"]  # left on since the last school day
    if left_on_due(now):
        assert (demo_story.LEFT_ON, "left_on") in kinds, kinds
    if not (now.weekday() < 5 and "17:25" <= now.strftime("%H:%M") < "17:45"):  # (it is left on this evening)
        history = api(base, token, f"alerts?school={demo.SCHOOL}&state=all")  # since the last school day
        assert any(a["device"] == demo_story.LEFT_ON and a["kind"] == "left_on" for a in history), history
    last = datetime.fromisoformat(devices[demo_story.LEFT_ON]["last_seen"])
    assert abs((last - datetime.now(last.tzinfo)).total_seconds()) < 400  # 最后联系: now, not a replayed day


def screenshots(base: str, logins: dict[str, tuple[str, str]], artifacts: Path) -> None:
    with browser() as b:
        page = b.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        login(page, base, *logins["admin"])
        page.wait_for_selector("li.device")
        assert page.locator("li.device").count() == 36
        assert "A楼" in page.inner_text("#floors") and "3楼" in page.inner_text("#floors")
        page.screenshot(path=str(artifacts / "demo-overview.png"), full_page=True)
        page.goto(base + "/usage/teachers")
        page.screenshot(path=str(artifacts / "demo-usage.png"), full_page=False)
        phone = b.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
        login(phone, base, *logins["maintainer"])
        phone.wait_for_selector("li.device")
        phone.screenshot(path=str(artifacts / "demo-maintainer-phone.png"), full_page=True)
        assert (artifacts / "demo-overview.png").stat().st_size > 10000


def test_demo_tells_a_week(tmp_path: Path) -> None:
    http = free_port()
    out = tmp_path / "demo.out"
    data = tmp_path / "demo"
    with out.open("wb") as f:
        proc = subprocess.Popen(bbt_cmd("demo", "--duration", "150", "--http", f"127.0.0.1:{http}",
                                        "--mqtt-port", str(free_port()), "--data-dir", str(data)),
                                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    try:
        text = wait_for(lambda: "Ctrl-C" in (t := out.read_text()) and t, 120, what="the demo's welcome")
        now = datetime.now(ZoneInfo(demo.TZ))
        assert re.search(r"正在生成本周历史数据… 1/\d+ 天", text) and "回放完成" in text
        assert text.index("回放完成") < text.index("仪表盘 Dashboard")  # the week is ready before the address
        base = f"http://127.0.0.1:{http}"
        assert f"{base}/" in text
        logins = {m[0]: (m[1], m[2]) for m in re.findall(r"Login（\S+ (\w+)）：(\S+) / (\S+)", text)}
        assert set(logins) == set(ROLES), text
        token = subprocess.run(bbt_cmd("token", "create", "--user", "admin", "--db", str(data / "demo.db")),
                               capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()[-1]
        check_week(base, token, now)
        check_faults_and_alerts(base, token, now)
        artifacts = Path(ROOT) / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        screenshots(base, logins, artifacts)
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, out.read_text()[-3000:]
