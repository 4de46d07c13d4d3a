"""The one catalogue of fault and alert codes (collector.codes): complete, and used by every page, the
fault register's export and alert messages; the 登记故障 select; the favicon and the static files pages load."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from alerts import faultlog, messages
from alerts.engine import AlertEngine
from collector import codes
from tests.dash import (
    SCHOOL,
    USERS,
    add_users,
    csrf_of,
    login,
    make_app,
    online,
    publish,
    school_day_at,
    school_hours,
    seed_school,
)
from tests.helpers import ROOT

CJK = re.compile(r"[\u3400-\u9fff]")


def raised_codes() -> set[str]:
    """Every fault code the code base raises: agent probes and trust, the collector, the alert rules."""
    found: set[str] = set()
    patterns = [r'(?:observe|raise_|clear)\(\s*"([a-z_]+)"', r'"code":\s*"([a-z_]+)"',
                r'open_fault\([^)]*?"([a-z_]+)", "(?:info|warning|critical)"']
    for folder in ("agent", "collector", "alerts"):
        for path in (Path(ROOT) / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for p in patterns:
                found |= set(re.findall(p, text, re.M))
    found |= {"policy_refused", "untrusted_policy"}  # agent/context.py, agent/trust.py: named by constants
    return found - {"internal", "not_json"}  # collector.devices.ingest's rejection reasons, not faults


def alert_kinds() -> set[str]:
    text = (Path(ROOT) / "alerts" / "rules.py").read_text(encoding="utf-8")
    return set(re.findall(r'_cand\("([a-z_]+)"', text)) | set(re.findall(r'Candidate\([^,]+, "([a-z_]+)"', text))


def test_every_raised_code_and_alert_kind_is_in_the_catalogue() -> None:
    raised = raised_codes()
    assert {"display_missing", "disk_full", "overheat", "unclean_shutdown", "agent_crash", "clock",
            "outbox_overflow", "agent_stopped"} <= raised  # the scan finds what it should
    assert raised - set(codes.FAULTS) == set()
    kinds = alert_kinds()
    assert {"fault", "left_on", "usage_below", "outside_use", "software_denied", "drift"} <= kinds
    assert kinds - set(codes.ALERT_KINDS) == set()
    assert {"report_" + c for c in codes.REPORT_CODES} <= set(codes.FAULTS)


def test_every_entry_is_complete_in_both_languages() -> None:
    for c in [*codes.FAULTS.values(), *codes.ALERT_KINDS.values()]:
        for lang in codes.LANGS:
            assert c.label(lang) and c.about(lang) and c.todo(lang), (c.code, lang)
        assert CJK.search(c.zh) and CJK.search(c.todo_zh), c.code
        assert not CJK.search(c.en + c.about_en + c.todo_en), c.code
        assert c.code not in (c.zh, c.en)
    assert codes.fault("display_missing").todo_zh.startswith("检查 HDMI")


def test_an_unknown_code_is_named_never_an_error() -> None:
    assert codes.fault_label("hdmi_cec_lost") == "未知故障（hdmi_cec_lost）"
    assert codes.fault_label("hdmi_cec_lost", "en") == "Unknown fault (hdmi_cec_lost)"
    assert codes.fault_label(None) == "未知故障（）" and not codes.fault("x").known
    assert codes.alert_label("fault", "disk_full") == "磁盘已满"
    assert codes.alert_label("left_on", None, "en") == "Left on"
    assert codes.alert_label("brand_new", None) == "未知告警（brand_new）"


def test_the_register_select_is_grouped_and_the_server_checks_it() -> None:
    groups = codes.register_choices()
    assert [g for g, _ in groups][:3] == ["供电", "显示与投影", "电脑"]
    assert ("power_cut", "停电") in groups[0][1]
    assert all(codes.registerable(c) for _, items in groups for c, _ in items)
    assert codes.registerable("report_no_sound") and not codes.registerable("report_nonsense")
    assert not codes.registerable("agent_crash") and not codes.registerable("")


def test_messages_name_the_code_from_the_catalogue() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    a = {"id": 1, "kind": "fault", "code": "disk_smart", "subject": codes.fault_label("disk_smart"),
         "severity": "warning", "opened": 1764547500.0, "state": "firing", "class": "302班", "floor": "3"}
    b = dict(a, id=2, kind="left_on", code=None, subject="夜间未关机")
    body = messages.compose([("firing", a), ("firing", b)], tz, 0, lambda ids: None)
    assert "硬盘即将损坏" in body and "故障1" in body and "未关机1" in body


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    a = make_app(str(tmp_path / "bbt.db"))
    db = a.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    now = school_day_at(8, 0)
    publish(db, "pc-102", [("fault", now, {"code": "display_missing", "severity": "warning", "state": "raised",
                                           "detail": "HDMI"}),
                           ("fault", now, {"code": "disk_smart", "severity": "critical", "state": "raised",
                                           "detail": "reallocated sectors"}),
                           ("fault", now, {"code": "from_the_future", "severity": "info", "state": "raised",
                                           "detail": "a newer agent"})], status=online("pc-102", now))
    faultlog.register_fault(db, SCHOOL, "pc-101", "report_display_missing", "warning", USERS["class_teacher"][0])
    AlertEngine(db, clock=school_hours).run_once()
    yield a
    db.close()


def client_as(app: Any, role: str) -> Any:
    c = app.test_client()
    login(c, USERS[role][0])
    return c


def test_pages_show_labels_where_raw_codes_were(app: Any) -> None:
    m = client_as(app, "maintainer")
    overview = m.get(f"/?school={SCHOOL}").get_data(as_text=True)
    register = m.get(f"/faults/?school={SCHOOL}").get_data(as_text=True)
    device = m.get(f"/devices/{SCHOOL}/pc-102").get_data(as_text=True)
    devices = m.get(f"/devices/?school={SCHOOL}").get_data(as_text=True)
    for page in (overview, register, device, devices):
        assert "投影无信号" in page and "硬盘即将损坏" in page and "未知故障（from_the_future）" in page
        assert ">display_missing<" not in page and ">disk_smart<" not in page
    assert "报修：无显示/投影不亮" in register and ">report_display_missing<" not in register
    [ticket] = [t for t in app.extensions["bbt_db"].query("SELECT id FROM fault_tickets WHERE code = 'disk_smart'")]
    page = m.get(f"/faults/tickets/{ticket['id']}").get_data(as_text=True)
    assert "硬盘即将损坏" in page and "处理建议" in page and "尽快备份资料并更换硬盘" in page
    m.get("/lang/en")
    en = m.get(f"/faults/?school={SCHOOL}").get_data(as_text=True)
    assert "Disk failing" in en and "No display signal" in en and "Unknown fault (from_the_future)" in en


def test_the_register_form_is_a_grouped_select_validated_by_the_server(app: Any) -> None:
    m = client_as(app, "maintainer")
    page = m.get(f"/faults/?school={SCHOOL}").get_data(as_text=True)
    form = page.split('id="register-form"')[1].split("</form>")[0]
    assert 'placeholder="power_cut"' not in form and '<select name="code" required>' in form
    assert '<optgroup label="供电"><option value="power_cut">停电</option>' in form
    assert '<option value="display_missing">投影无信号</option>' in form
    db = app.extensions["bbt_db"]
    before = db.query("SELECT COUNT(*) AS n FROM faults")[0]["n"]
    r = m.post("/faults/register", data={"csrf_token": csrf_of(page), "school": SCHOOL, "device": "pc-101",
                                         "code": "hdmi", "severity": "warning"}, follow_redirects=True)
    assert "未登记" in r.get_data(as_text=True) and "hdmi 不在故障目录中" in r.get_data(as_text=True)
    assert db.query("SELECT COUNT(*) AS n FROM faults")[0]["n"] == before
    r = m.post("/faults/register", data={"csrf_token": csrf_of(page), "school": SCHOOL, "device": "pc-101",
                                         "code": "projector", "severity": "warning"}, follow_redirects=True)
    assert "已登记故障" in r.get_data(as_text=True)
    assert db.query("SELECT source FROM faults WHERE code = 'projector'") == [{"source": "person"}]
    with pytest.raises(faultlog.FaultError, match="'x' is not one a person may register"):
        faultlog.register_fault(db, SCHOOL, "pc-101", "x", "warning", "电工张")


def test_the_register_export_names_faults_in_chinese(app: Any) -> None:
    m = client_as(app, "maintainer")
    wb = load_workbook(io.BytesIO(m.get(f"/api/v1/faults.xlsx?school={SCHOOL}").data))
    ws = wb["故障登记簿"]
    header = [c.value for c in next(ws.iter_rows(max_row=1))]
    rows = [dict(zip(header, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]
    by_code = {r["故障代码"]: r for r in rows}
    assert by_code["disk_smart"]["故障"] == "硬盘即将损坏" and by_code["disk_smart"]["级别"] == "严重"
    assert by_code["disk_smart"]["处理建议"] == "尽快备份资料并更换硬盘。"
    assert by_code["report_display_missing"]["故障"] == "报修：无显示/投影不亮"
    assert by_code["from_the_future"]["故障"] == "未知故障（from_the_future）"
    wb.close()


def test_favicon_and_every_static_file_a_template_names_exist(app: Any) -> None:
    c = app.test_client()
    with c.get("/favicon.ico") as r:
        assert r.status_code == 200 and r.data[:4] == b"\0\0\1\0" and r.mimetype == "image/vnd.microsoft.icon"
    assert '<link rel="icon" href="/static/favicon.svg"' in c.get("/login").get_data(as_text=True)
    static = Path(ROOT) / "dashboard" / "static"
    named = set()
    for t in (Path(ROOT) / "dashboard" / "templates").rglob("*.html"):
        named |= set(re.findall(r"url_for\('static', filename='([^']+)'\)", t.read_text(encoding="utf-8")))
    assert "vendor/echarts/echarts.common.min.js" in named and "favicon.svg" in named
    assert sorted(f for f in named if not (static / f).is_file()) == []


def test_a_published_weeks_correction_names_the_fault() -> None:
    from collector.rates.usage_export import correction_lines

    [line] = correction_lines({"corrections": [{"t": 1764547500.0, "by": "电工张", "device": "pc-101",
                                                "code": "report_no_power", "review": "rejected", "changes": []}]})
    assert "故障登记 pc-101 报修：无法开机 判定为误报" in line and "report_no_power" not in line
