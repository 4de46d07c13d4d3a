"""School data out: the weekly, monthly and date-range reports as XLSX and CSV, and the fault register.

The school of tests/test_usage_week.py (week 2026-W19), its teachers renamed to strings a spreadsheet
would take for formulas; an agent's fault with such a detail. Every export is opened as a user's
spreadsheet program would open it (openpyxl, csv) and checked against the API.
"""
from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

import protocol
from bbt.cli import main
from collector import sheets
from collector.rates import usage
from collector.rates.fault_review import review_fault
from collector.rates.usage_export import rate_label
from collector.school.imports import run_import
from tests.browser import browser, login, serve
from tests.dash import PASSWORD, make_app
from tests.test_usage_week import WED, S, write
from tests.test_usage_week import script as week_script
from tests.usage_script import DeviceScript, at, ingest

W = "2026-W19"
NASTY = {"王": '=HYPERLINK("http://x","y")', "李": "+1", "张": "-2+3", "刘": "@SUM(A1)"}
FAULT_DETAIL = "=cmd|' /C calc'!A0"
RISKY = ("=", "+", "-", "@", "\t", "\r")


def import_nasty_school(db: Any, tmp: Path) -> None:
    """tests/test_usage_week.import_school with the teachers' names of NASTY."""
    run_import(db, "devices", S, write(tmp / "devices.csv", "device,class\npc1,一班\npc2,二班\n"))
    run_import(db, "bell", S, write(tmp / "bell.csv", "period,start,end,schedule,valid_from\n"
                                    "1,08:00,08:40,winter,2025-09-01\n2,08:50,09:30,winter,2025-09-01\n"
                                    "3,10:00,10:40,winter,2025-09-01\n"
                                    "1,07:50,08:30,summer,2026-05-08\n2,08:40,09:20,summer,2026-05-08\n"
                                    "3,09:50,10:30,summer,2026-05-08\n"))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "weekday", "period", "teacher", "subject"])
    n = NASTY
    for wd in range(1, 6):
        w.writerows([["一班", wd, 1, n["王"], "数学"], ["一班", wd, 2, n["李"], "语文"],
                     ["一班", wd, 3, *((n["刘"], "音乐") if wd == 2 else (n["张"], "英语"))],
                     ["二班", wd, 1, n["李"], "语文"], ["二班", wd, 2, n["王"], "数学"],
                     ["二班", wd, 3, n["张"], "英语"]])
    run_import(db, "timetable", S, write(tmp / "timetable.csv", buf.getvalue()))
    run_import(db, "substitutions", S, write(tmp / "subs.csv", "date,class,period,teacher\n2026-05-07,一班,3,赵\n"))
    db.execute("UPDATE schools SET settings = ? WHERE school = ?", (json.dumps({"heartbeat_s": 300}), S))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from alerts.faultlog import register_fault, sync_tickets
    from dashboard.users import add_user, create_token

    tmp = Path(tmp_path_factory.mktemp("exports"))
    path = str(tmp / "bbt.db")
    app = make_app(path)
    db = app.extensions["bbt_db"]
    import_nasty_school(db, tmp)
    agent = DeviceScript("pc1")  # an agent's fault whose detail is a formula, at lunch (no lesson excused)
    agent.events = [protocol.make_event(f"pc1-x{i}", 10_000 + i, "fault", at(WED, hhmm), {
        "code": "display_missing", "severity": "warning", "state": state, "detail": FAULT_DETAIL})
        for i, (hhmm, state) in enumerate((("12:00", "raised"), ("12:30", "cleared")))]
    assert ingest(db, S, week_script() + [agent]) > 100
    sync_tickets(db, S, time.time())
    # the maintainer confirms pc2's display_missing of Thursday as 影响上课 (protocol.md §3), as
    # tests/test_usage_week.py does: its lesson is excluded, as the figures below expect
    [f] = db.query("SELECT id FROM faults WHERE school = ? AND device = 'pc2' AND code = 'display_missing'", (S,))
    review_fault(db, f["id"], "confirmed", "维修员")
    register_fault(db, S, "pc2", "power_cut", "critical", "-总务处", opened_t=at(WED, "13:00").timestamp(),
                   cleared_t=at(WED, "13:30").timestamp(), summary="@SUM(A1) 停电")
    add_user(db, "boss", "headteacher", PASSWORD, S, must_change=False)
    token = create_token(db, "boss")
    client = app.test_client()

    def get(url: str) -> Any:
        r = client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, (url, r.status_code, r.data[:300])
        return r
    yield {"app": app, "db": db, "path": path, "get": get, "tmp": tmp}
    db.close()


def cli(store: dict[str, Any], *args: str) -> str:
    r = CliRunner().invoke(main, [*args, "--db", store["path"]])
    assert r.exit_code == 0, r.output
    return r.stdout


def figures(wb: Any) -> dict[str, Any]:
    """The 汇总 sheet's figures: label -> value (the rows under the 项目 / 数值 header)."""
    ws = wb["汇总"]
    rows = [[c.value for c in r] for r in ws.iter_rows()]
    start = next(i for i, r in enumerate(rows) if r[:2] == ["项目", "数值"])
    out: dict[str, Any] = {}
    for r in rows[start + 1:]:
        if r[0] is None:
            break
        out[r[0]] = r[1]
    return out


def sheet_rows(ws: Any) -> list[dict[str, Any]]:
    head = [c.value for c in ws[1]]
    return [dict(zip(head, [c.value for c in r], strict=True)) for r in ws.iter_rows(min_row=2)]


def test_xlsx_summary_and_tables_equal_the_api(store: dict[str, Any]) -> None:
    get = store["get"]
    teachers = get(f"/api/v1/usage/teachers?school={S}&week={W}").get_json()
    classes = get(f"/api/v1/usage/classes?school={S}&week={W}").get_json()
    assert {t["teacher"] for t in teachers} == {*NASTY.values(), "赵"}
    for url in (f"/api/v1/usage/report?school={S}&week={W}&format=xlsx", f"/usage/export.xlsx?school={S}&week={W}"):
        r = get(url)
        assert r.headers["Content-Disposition"].startswith("attachment")
        wb = load_workbook(io.BytesIO(r.data))
        assert wb.sheetnames == ["汇总", "教师使用率", "班级使用率", "巡课登记"]
        f = figures(wb)
        scheduled, used = sum(c["scheduled"] for c in classes), sum(c["used"] for c in classes)
        assert f["统计周"] == W and f["全校使用率"] == pytest.approx(used / scheduled) == pytest.approx(12 / 23)
        assert f["教师人数"] == len(teachers) and f["班级数"] == len(classes)
        assert f["未达标教师人数"] == sum(1 for t in teachers if t["below_threshold"]) == 3
        assert f["未达标班级数"] == sum(1 for c in classes if c["below_threshold"]) == 1
        assert (f["应上课时（节）"], f["已使用（节）"]) == (scheduled, used) == (23, 12)
        excluded = [k for k in classes[0] if k.startswith("excluded")]  # excluded_faulty, or excluded
        assert f[f"{rate_label(excluded[0])}（节）"] == sum(c[excluded[0]] for c in classes) == 1
        assert wb["汇总"].cell(1, 1).value.endswith(f"班班通使用情况周汇总 {W}")
        for sheet, by, api_rows in (("教师使用率", "teacher", teachers), ("班级使用率", "class", classes)):
            ws = wb[sheet]
            # every key of the rate rows is a column, labelled in Chinese (the JSON's keys come sorted)
            head = [c.value for c in ws[1]]
            assert head[0] == rate_label(by) and sorted(head) == sorted(rate_label(k) for k in api_rows[0])
            rows = sheet_rows(ws)
            want = sorted(api_rows, key=lambda x: (x["rate"], x[by]))  # worst first
            assert [(x[rate_label(by)], x["应上课时"], x["已使用"], x["使用率"]) for x in rows] == \
                [(x[by], x["scheduled"], x["used"], pytest.approx(x["rate"])) for x in want]
            assert [x["是否达标"] for x in rows] == ["未达标" if x["below_threshold"] else "达标" for x in want]
            fills = [ws.cell(i + 2, 1).fill.fgColor.rgb for i in range(len(rows))]
            assert [f.endswith("F8D7DA") for f in fills] == [x["below_threshold"] for x in want]
            assert ws.cell(2, 1 + head.index("使用率")).number_format == "0.0%"
        for ws in wb.worksheets:
            assert ws.freeze_panes in ("A2", "A3"), ws.title
            assert int(ws.page_setup.paperSize) == 9 and ws.page_setup.fitToWidth == 1, ws.title
            assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
            assert ws.oddHeader.center.text and ws.oddFooter.center.text, ws.title
            assert ws.column_dimensions["A"].width and ws.column_dimensions["A"].width >= 8, ws.title
        assert wb["巡课登记"].print_title_rows == "$1:$1" and wb["巡课登记"].max_row == 1 + 24
        wb.close()


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf"), data[:20]
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_csv_has_a_bom_and_chinese_headers(store: dict[str, Any]) -> None:
    get = store["get"]
    teachers = get(f"/api/v1/usage/teachers?school={S}&week={W}").get_json()
    for r in (get(f"/api/v1/usage/report?school={S}&week={W}&format=csv"),
              get(f"/usage/export.csv?school={S}&week={W}")):
        assert r.mimetype == "text/csv" and r.headers["Content-Disposition"].startswith("attachment")
        rows = csv_rows(r.data)
        assert sorted(rows[0][2:]) == sorted(rate_label(k) for k in teachers[0] if k != "teacher")
        assert rows[0][:6] == ["类别", "名称", "应上课时", "已使用", "使用率", "是否达标"]
        assert {"故障不计课时", "不计课时"} & set(rows[0])  # excluded_faulty, or the rows' excluded (protocol.md §3)
        body = [x for x in rows[1:] if x[0] == "教师"]
        assert [(x[1].removeprefix("'"), x[2], x[3], x[4], x[5]) for x in body] == \
            [(t["teacher"], str(t["scheduled"]), str(t["used"]), f"{t['rate'] * 100:.1f}%",
              "未达标" if t["below_threshold"] else "达标") for t in teachers]
        assert [x[1] for x in rows[1:] if x[0] == "班级"] == ["一班", "二班"]
    en = csv_rows(get(f"/api/v1/usage/report?school={S}&week={W}&format=csv&lang=en").data)
    assert en[0][:6] == ["kind", "name", "scheduled", "used", "rate", "below_threshold"]
    assert sorted(en[0][2:]) == sorted(k for k in teachers[0] if k != "teacher")
    assert en[1][4] == repr(float(teachers[0]["rate"])) and en[1][5] in ("true", "false")
    out = cli(store, "report", "week", W, "--school", S, "--format", "csv")
    assert out.startswith("\ufeff类别,名称,应上课时")
    term = cli(store, "report", "term", "2026-05-06", "--school", S, "--by", "class", "--format", "csv")
    assert term.startswith("\ufeff班级,应上课时,已使用,使用率")
    assert cli(store, "report", "term", "2026-05-06", "--school", S, "--format", "csv", "--lang", "en") \
        .startswith("\ufeffteacher,scheduled,used,rate")


def summed(lessons: list[dict[str, Any]], by: str) -> dict[str, tuple[int, int, int]]:
    """(scheduled, used, excluded) per teacher or class, counted from the report's lessons."""
    acc: dict[str, list[int]] = {}
    for r in lessons:
        if r["status"] == "pending":
            continue
        a = acc.setdefault(r[by], [0, 0, 0])
        a[0] += int(r["counted"])
        a[1] += int(r["used"] and r["counted"])
        a[2] += int(not r["counted"])
    return {k: (s, u, x) for k, (s, u, x) in acc.items() if s}


def rates(rows: list[dict[str, Any]], by: str) -> dict[str, tuple[Any, ...]]:
    return {r[by]: (r["scheduled"], r["used"], r.get("excluded", r.get("excluded_faulty"))) for r in rows}


def test_month_and_range_rates_equal_summed_lessons(store: dict[str, Any]) -> None:
    week = json.loads(cli(store, "report", "range", "2026-05-04", "2026-05-10", "--school", S))
    for by, key in (("teacher", "teachers"), ("class", "classes")):
        assert rates(week[key], by) == summed(week["lessons"], by)
        assert week[key] == usage.week_rates(store["db"], S, W, by)  # the same rate function as the week
        for r in week[key]:
            assert r["rate"] == pytest.approx(r["used"] / r["scheduled"])
    month = json.loads(cli(store, "report", "month", "2026-05", "--school", S))
    assert (month["start"], month["end"], month["month"]) == ("2026-05-01", "2026-05-31", "2026-05")
    assert {r["date"][:7] for r in month["lessons"]} == {"2026-05"}
    for by, key in (("teacher", "teachers"), ("class", "classes")):
        assert rates(month[key], by) == summed(month["lessons"], by)
        assert [r[by] for r in month[key]] == [r[by] for r in week[key]]
    assert sum(r["scheduled"] for r in month["classes"]) > sum(r["scheduled"] for r in week["classes"])
    assert sum(r["used"] for r in month["classes"]) == 12  # only W19 has events
    api = store["get"](f"/api/v1/usage/report?school={S}&month=2026-05").get_json()
    assert api["teachers"] == month["teachers"] and api["classes"] == month["classes"]
    api_range = store["get"](f"/api/v1/usage/teachers?school={S}&from=2026-05-01&to=2026-05-31").get_json()
    assert api_range == month["teachers"]
    page = store["get"](f"/usage/print?school={S}&month=2026-05").get_data(as_text=True)
    assert "2026-05（2026-05-01 – 2026-05-31）" in page and page.count('<tr class="below">') == sum(
        1 for r in month["teachers"] + month["classes"] if r["below_threshold"])
    xlsx = store["tmp"] / "may.xlsx"
    cli(store, "report", "month", "2026-05", "--school", S, "--format", "xlsx", "--out", str(xlsx))
    wb = load_workbook(xlsx)
    f = figures(wb)
    assert f["统计范围"] == "2026-05" and f["起止日期"] == "2026-05-01 至 2026-05-31"
    assert f["应上课时（节）"] == sum(r["scheduled"] for r in month["classes"])
    assert f["全校使用率"] == pytest.approx(12 / sum(r["scheduled"] for r in month["classes"]))
    assert "班班通使用情况月汇总 2026年5月" in wb["汇总"].cell(1, 1).value
    wb.close()


@pytest.mark.parametrize(("args", "message"), [
    (("range", "2026-05-10", "2026-05-01"), "ends (2026-05-01) before it starts (2026-05-10)"),
    (("range", "2026-05-01", "2026-5-x"), "to '2026-5-x' is not a date YYYY-MM-DD"),
    (("range", "2024-01-01", "2026-01-01"), "longer than 400 days"),
    (("month", "2026-13"), "month '2026-13' is not YYYY-MM"),
])
def test_bad_ranges_are_refused(store: dict[str, Any], args: tuple[str, ...], message: str) -> None:
    r = CliRunner().invoke(main, ["report", *args, "--school", S, "--db", store["path"]])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def formula_cells(wb: Any) -> list[str]:
    return [f"{ws.title}!{c.coordinate}" for ws in wb.worksheets for row in ws.iter_rows() for c in row
            if c.data_type == "f"]


def text_values(wb: Any) -> dict[str, Any]:
    return {c.value: c for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)}


def test_no_formula_cells_in_any_export(store: dict[str, Any]) -> None:
    get, tmp = store["get"], store["tmp"]
    day, register, register_cli = tmp / "day.xlsx", tmp / "register.xlsx", tmp / "register-cli.xlsx"
    cli(store, "report", "day", WED, "--school", S, "--format", "xlsx", "--out", str(day))
    cli(store, "faults", "export", "--school", S, "--out", str(register_cli))
    register.write_bytes(get(f"/api/v1/faults.xlsx?school={S}").data)
    books = {"week": get(f"/usage/export.xlsx?school={S}&week={W}").data,
             "month": get(f"/usage/export.xlsx?school={S}&from=2026-05-01&to=2026-05-31").data,
             "day": day.read_bytes(), "register": register.read_bytes(), "register-cli": register_cli.read_bytes()}
    for name, data in books.items():
        wb = load_workbook(io.BytesIO(data))
        assert formula_cells(wb) == [], name
        values = text_values(wb)
        expected = [FAULT_DETAIL, "@SUM(A1) 停电", "-总务处"] if name.startswith("register") else \
            [v for k, v in NASTY.items() if name != "day" or k != "刘"]  # 刘 has no lesson on Wednesdays
        for s in expected:
            assert s in values, (name, s)
            assert values[s].data_type == "s" and values[s].quotePrefix, (name, s)
        wb.close()
    csvs = [get(f"/usage/export.csv?school={S}&week={W}").data,
            get(f"/api/v1/usage/report?school={S}&month=2026-05&format=csv&lang=en").data,
            cli(store, "report", "term", "2026-05-06", "--school", S, "--format", "csv").encode()]
    for data in csvs:
        cells = [c for row in csv_rows(data) for c in row]
        assert not [c for c in cells if c.startswith(RISKY)]
        assert {"'" + n for n in NASTY.values()} <= set(cells)


def test_sheets_keep_numbers_and_neutralize_text() -> None:
    wb = Workbook()
    ws = wb.active
    ws.append([-3, 2.5, "-3", "\tx", "=1+1", "＝1", "a=b"])
    wb2 = load_workbook(io.BytesIO(sheets.workbook_bytes(wb)))
    cells = list(wb2.active[1])
    assert [(c.value, c.data_type) for c in cells[:2]] == [(-3, "n"), (2.5, "n")]
    assert [c.quotePrefix for c in cells] == [False, False, True, True, True, False, False]
    assert formula_cells(wb2) == []
    assert sheets.csv_text(["a"], [[-3, "-3", "@x", None, "ok"]]) == "\ufeffa\r\n-3,'-3,'@x,,ok\r\n"


def test_range_picker_downloads_a_file(store: dict[str, Any]) -> None:
    with serve(store["app"], threads=4) as base, browser() as b:
        page = b.new_page(accept_downloads=True, locale="zh-CN")
        login(page, base, "boss", PASSWORD)
        page.goto(f"{base}/usage/teachers?school={S}&week={W}")
        page.click("#this-month")
        first, last = page.input_value("input[name=from]"), page.input_value("input[name=to]")
        assert first.endswith("-01") and first[:7] == last[:7]
        with page.expect_download() as dl:
            page.click("#export-xlsx")
        wb = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))
        assert figures(wb)["起止日期"] == f"{first} 至 {last}"
        wb.close()
        page.fill("input[name=from]", "2026-05-04")
        page.fill("input[name=to]", "2026-05-10")
        page.click("#range-picker button[type=submit]:not([formaction])")
        assert "2026-05-04 至 2026-05-10" in page.inner_text("h1")
        with page.expect_download() as dl:
            page.click("#range-xlsx")
        assert dl.value.suggested_filename.endswith(".xlsx")
        wb = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes()))
        f = figures(wb)
        assert f["统计范围"] == "2026-05-04 至 2026-05-10" and f["全校使用率"] == pytest.approx(12 / 23)
        assert f["未达标教师人数"] == 3
        wb.close()
        with page.expect_download() as dl:
            page.click("#range-csv")
        assert Path(dl.value.path()).read_bytes().startswith(b"\xef\xbb\xbf\xe7\xb1\xbb\xe5\x88\xab")  # BOM 类别
