"""Every page of the dashboard in a real browser, for every role, in both languages, on a desk and a phone.

One seeded store, one server and one Chromium are shared by all the cases; each role logs in once.
The crawler (tests/crawl.py, which documents its rules) starts from the navigation and visits one
page of every type it finds: a failure names the role, language, viewport and URL. Screenshots go to
test-artifacts/crawl/<role>-<lang>/NN-<page>-<viewport>.jpg, the visited URLs to visited.txt there.
The seed gives every page type something to show: assets, stocktakes (one finished, one open), a
power action, the devices' virus protection and patches.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from collector import codes
from collector.operations import power
from collector.school import assets
from tests.browser import browser, login, serve
from tests.crawl import crawl
from tests.dash import (
    DEVICES,
    PASSWORD,
    SCHOOL,
    USERS,
    add_users,
    make_app,
    online,
    publish,
    school_day_at,
    school_hours,
)
from tests.helpers import ROOT

pytestmark = pytest.mark.browser
ARTIFACTS = Path(ROOT) / "test-artifacts" / "crawl"
ROLES = ("admin", "headteacher", "class_teacher", "teacher", "maintainer")
CODES = sorted(codes.all_codes())
# a detail page of each type that the role may see must be reached from the navigation
DETAIL_TYPES = {"devices.detail", "faults.ticket", "usage.lessons", "usage.print_view", "assets.detail", "assets.edit",
                "stocktakes.show", "stocktakes.print_view", "power.preview", "power.result"}


def seed(db: Any, tmp: Path) -> None:
    """The small school of tests/dash with a timetable, a day of use, and faults of every origin: an agent's
    (display_missing, disk_full), one of a newer agent (a code the catalogue does not know), a
    maintainer's 停电 and a teacher's 报修; the alert engine turns them into alerts and register entries."""
    from alerts import faultlog
    from alerts.engine import AlertEngine
    from collector.school.imports import run_import
    from tests.dash import seed_school

    seed_school(db)
    # period 1 just after midnight: whenever the suite runs (but Monday 00:00-00:10), this week has a lesson
    # that is over, so the rates tables have rows and link to a teacher's lessons
    (tmp / "bell.csv").write_text("period,start,end\n1,00:00,00:10\n2,08:00,08:45\n3,08:55,09:40\n",
                                  encoding="utf-8")
    rows = [f"{klass},{wd},{p},{teacher},{subject}" for wd in range(1, 8)
            for klass, teacher, subject in (("七年级1班", "李强", "数学"), ("七年级2班", "王芳", "语文"),
                                            ("八年级1班", "李强", "数学")) for p in (1, 2)]
    (tmp / "tt.csv").write_text("class,weekday,period,teacher,subject\n" + "\n".join(rows) + "\n", encoding="utf-8")
    run_import(db, "bell", SCHOOL, tmp / "bell.csv")
    run_import(db, "timetable", SCHOOL, tmp / "tt.csv")
    start = school_day_at(7, 55)
    for i, (dev, *_rest) in enumerate(DEVICES):
        events: list[tuple[str, Any, dict[str, Any]]] = [
            ("heartbeat", start, {"in_use": True, "idle_s": 0, "cpu_pct": 5, "mem_pct": 30, "disk_pct": 40,
                                  "uptime_s": 600}),
            ("session", start + timedelta(minutes=5), {"state": "start", "session_id": f"s{i}"}),
            ("session", start + timedelta(minutes=45), {
                "state": "end", "session_id": f"s{i}", "start": (start + timedelta(minutes=5)).isoformat(),
                "end": (start + timedelta(minutes=45)).isoformat(), "active_s": 2400})]
        if i == 0:
            events.append(("fault", start, {"code": "display_missing", "severity": "warning", "state": "raised",
                                            "detail": "no display or projector is connected"}))
        if i == 1:
            events += [("fault", start, {"code": "disk_full", "severity": "warning", "state": "raised",
                                         "detail": "system drive C: 97% full"}),
                       ("fault", start, {"code": "hdmi_cec_lost", "severity": "info", "state": "raised",
                                         "detail": "from an agent newer than the collector"})]
        publish(db, dev, events, status=online(dev, start))
    for dev, *_rest in DEVICES:
        publish(db, dev, [("protection", start, {
            "enabled": True, "scanner": "Microsoft Defender", "signature_age_d": 10, "threats": 1,
            "threat_names": ["Trojan:Win32/Wacatac.B!ml"], "pending_security": 2,
            "products": [{"name": "Windows Defender", "enabled": True, "up_to_date": False}]})])
    faultlog.register_fault(db, SCHOOL, DEVICES[2][0], "power_cut", "critical", USERS["maintainer"][0],
                            opened_t=school_day_at(7, 0).timestamp(), cleared_t=school_day_at(7, 50).timestamp(),
                            summary="整栋楼停电")
    faultlog.register_fault(db, SCHOOL, DEVICES[0][0], "report_no_sound", "warning", USERS["class_teacher"][0])
    add_users(db)
    seed_assets(db, tmp)
    power.create_group(db, SCHOOL, "message", {"text": "请关闭投影仪"}, USERS["maintainer"][0])
    AlertEngine(db, clock=school_hours).run_once()
    seed_correction(db)


def seed_correction(db: Any) -> None:
    """The school day's week published, then the projector fault reviewed: a correction to show (公布, 打印)."""
    from collector.rates import fault_review
    from collector.rates.usage_report import publish_week

    year, week, _day = school_day_at(8, 0).isocalendar()
    publish_week(db, SCHOOL, f"{year}-W{week:02d}", USERS["headteacher"][0])
    [f] = db.query("SELECT id FROM faults WHERE device = ? AND code = 'display_missing'", (DEVICES[0][0],))
    fault_review.review_fault(db, f["id"], "confirmed", USERS["maintainer"][0])


def seed_assets(db: Any, tmp: Path) -> None:
    """A ledger of four items, a finished stocktake (one item missing, one found elsewhere) and an open one
    with one item confirmed: the asset, stocktake and print pages have something to show."""
    from collector.school import stocktake
    from collector.school.imports import run_import

    (tmp / "assets.csv").write_text("资产编号,品类,教室,楼,型号,序列号,品牌,状态,设备\n"
                                    "ZC-0101,电脑,A101,A楼,M720t,PC0ABCDE,联想,在用,pc-101\n"
                                    "ZC-0102,一体机,A101,A楼,CB86EA,,希沃,在用,\n"
                                    "ZC-0201,投影仪,A102,A楼,,,,在用,\n"
                                    "ZC-0103,音箱,A101,A楼,,,,维修,\n", encoding="utf-8")
    run_import(db, "assets", SCHOOL, tmp / "assets.csv")
    ids = {a["code"]: a["id"] for a in assets.list_assets(db, SCHOOL)}
    who = USERS["maintainer"][0]
    first = stocktake.start(db, SCHOOL, "2026秋季学期期中盘点", who)
    stocktake.confirm(db, first, ids["ZC-0101"], who)
    stocktake.confirm(db, first, ids["ZC-0102"], who, found_room="A102")
    stocktake.finish(db, first, who)
    second = stocktake.start(db, SCHOOL, "2026秋季学期期末盘点", who)
    stocktake.confirm(db, second, ids["ZC-0101"], who)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The dashboard (waitress) over one seeded store and one Chromium; a logged-in state per role."""
    folder = tmp_path_factory.mktemp("crawl")
    app = make_app(str(folder / "bbt.db"), UPLOAD_DIR=str(folder / "uploads"))
    seed(app.extensions["bbt_db"], folder)
    try:
        with serve(app, threads=4) as base, browser() as b:
            yield {"base": base, "app": app, "browser": b, "states": {}, "folder": folder}
    finally:
        app.extensions["bbt_db"].close()


def context(site: dict[str, Any], role: str, lang: str) -> Any:
    """A browser context of a logged-in user of ``role`` (each role logs in once; its cookies are reused)."""
    b, base = site["browser"], site["base"]
    if role not in site["states"]:
        ctx = b.new_context()
        page = ctx.new_page()
        login(page, base, USERS[role][0], PASSWORD)
        page.wait_for_url(lambda u: "/login" not in u)
        site["states"][role] = ctx.storage_state()
        ctx.close()
    ctx = b.new_context(locale="zh-CN" if lang == "zh" else "en-US",
                        storage_state=site["states"][role])
    ctx.add_cookies([{"name": "bbt_lang", "value": lang, "url": base}])
    return ctx


def expected_details(app: Any, role: str) -> set[str]:
    from dashboard.access import declared_roles

    with app.test_request_context():
        return {ep for ep in DETAIL_TYPES if role in (declared_roles(ep) or ())}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("role", ROLES)
def test_every_page_is_whole(site: dict[str, Any], role: str, lang: str) -> None:
    """Each page at desktop and phone size (tests/crawl.py: VIEWPORTS); a problem names its viewport and URL."""
    ctx = context(site, role, lang)
    try:
        result = crawl(ctx, site["app"], site["base"], lang, CODES, artifacts=ARTIFACTS / f"{role}-{lang}")
    finally:
        ctx.close()
    where = f"{role} {lang}"
    problems = result.problems
    (ARTIFACTS / f"{role}-{lang}" / "visited.txt").write_text(
        "".join(f"{ep} {url}\n" for url, ep in result.visited.items()), encoding="utf-8")
    assert not problems, f"{where}: {len(problems)} problems:\n" + "\n".join(map(str, problems))
    missing = expected_details(site["app"], role) - set(result.visited.values())
    assert not missing, f"{where}: no page of type {sorted(missing)} reached from the navigation; visited:\n" + \
        "\n".join(result.visited)
    assert len(result.visited) >= 3 and all(s.stat().st_size > 3000 for s in result.shots), where


def broken_district() -> str:
    """The district page as it was (a script that does not exist), with an untranslated heading and raw codes."""
    source = (Path(ROOT) / "dashboard" / "templates" / "district" / "index.html").read_text(encoding="utf-8")
    broken = source.replace("vendor/echarts/echarts.common.min.js", "vendor/echarts/echarts.simple.min.js")
    broken = broken.replace("{% endblock %}\n{% block scripts %}", "<h2>未翻译的标题</h2><p>display_missing</p>"
                            "<p>disk_full, overheat</p>\n{% endblock %}\n{% block scripts %}")
    assert broken.count("echarts.simple.min.js") == 1 and "未翻译的标题" in broken
    return broken


def test_the_crawl_catches_a_missing_script(site: dict[str, Any]) -> None:
    """The test of the test: a second app over the same store, its district template overridden (a test-only
    template loader), crawled as the admin in English."""
    from jinja2 import ChoiceLoader, DictLoader

    app = make_app(site["app"].config["BBT_DB"])
    app.jinja_loader = ChoiceLoader([DictLoader({"district/index.html": broken_district()}),  # type: ignore[assignment]
                                     app.jinja_loader])
    try:
        with serve(app) as base:
            ctx = context(dict(site, base=base, states={}), "admin", "en")
            try:
                result = crawl(ctx, app, base, "en", CODES, start=[base + "/district"], follow=False)
            finally:
                ctx.close()
    finally:
        app.extensions["bbt_db"].close()
    assert {p.url for p in result.problems} == {base + "/district"}, result.problems
    assert any(p.kind == "http" and p.detail.startswith("404 ") and p.detail.endswith("echarts.simple.min.js")
               for p in result.problems), result.problems
    assert any(p.kind == "console" for p in result.problems), result.problems
    # a whole text that is a code, and a snake_case code within a list (a plain word is not taken for one)
    assert {p.detail for p in result.problems if p.kind == "raw_code"} == {"display_missing", "disk_full"}
    assert "未翻译的标题" in [p.detail for p in result.problems if p.kind == "untranslated"]


def test_register_a_fault_with_the_select(site: dict[str, Any]) -> None:
    """登记故障 in the browser: the maintainer picks a device and a fault by its Chinese name, grouped."""
    ctx = context(site, "maintainer", "zh")
    try:
        page = ctx.new_page()
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(site["base"] + f"/faults/?school={SCHOOL}")
        page.click("#register-form >> xpath=.. >> summary")
        groups = page.eval_on_selector_all("#register-form select[name=code] optgroup", "gs => gs.map(g => g.label)")
        assert groups[:3] == ["供电", "显示与投影", "电脑"]
        page.select_option("#register-form select[name=device]", DEVICES[1][0])
        page.select_option("#register-form select[name=code]", label="投影机故障")
        page.fill("#register-form textarea[name=summary]", "灯泡不亮")
        page.click("#register-form button[type=submit]")
        page.wait_for_selector(".flash.ok")
        row = page.locator("table.tickets tr", has_text="灯泡不亮")
        assert "投影机故障" in row.inner_text() and "projector" not in row.inner_text()
        page.screenshot(path=str(ARTIFACTS / "register-a-fault-phone.jpg"), full_page=True, type="jpeg", quality=50)
    finally:
        ctx.close()
    db = site["app"].extensions["bbt_db"]
    assert db.query("SELECT device, source FROM faults WHERE code = 'projector'") == [
        {"device": DEVICES[1][0], "source": "person"}]
