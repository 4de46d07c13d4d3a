"""Usage reports (a week, a month, any dates) as JSON, CSV, XLSX (openpyxl) and printable HTML
(Chinese), and the day's patrol record. Every spreadsheet is written through collector.sheets
(formula-injection safe cells, BOM, print set-up).

Rate rows (collector.rates.usage.rate_dict) are rendered from their own keys: a column the rate function
adds appears in every export, labelled from RATE_LABELS (or by its key until it has a label).
"""
from __future__ import annotations

import html
import json
from datetime import date, datetime
from typing import Any

from collector import codes, sheets
from collector.lessons.attribution import STATUS_ZH

KEY_LABELS = {"zh": {"teacher": "教师", "class": "班级"}, "en": {"teacher": "teacher", "class": "class"}}
RATE_LABELS = {"scheduled": "应上课时", "used": "已使用", "rate": "使用率", "below_threshold": "是否达标",
               "excluded_faulty": "故障不计课时", "excluded": "不计课时", "awaiting_review": "待核实课时"}
DEFAULT_RATE_KEYS = ["scheduled", "used", "rate", "below_threshold", "excluded", "awaiting_review"]
LANGS = ("zh", "en")


def rate_keys(rows: list[dict[str, Any]], by: str) -> list[str]:
    """The rate columns (besides the name) in the rate function's order: every scalar key of the rows."""
    keys: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k != by and k not in keys and (v is None or isinstance(v, (str, int, float, bool))):
                keys.append(k)
    return keys or list(DEFAULT_RATE_KEYS)


def rate_label(key: str, lang: str = "zh") -> str:
    if lang == "en":
        return key
    return KEY_LABELS["zh"].get(key) or RATE_LABELS.get(key, key)


def _zh_value(key: str, value: Any) -> Any:
    if key == "below_threshold":
        return "未达标" if value else "达标"
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def _csv_value(key: str, value: Any, lang: str) -> Any:
    """English: data as scripts expect it (rate unrounded, true/false); Chinese: as a person reads it
    (rate as 58.3%, which Excel takes for a number, 达标 / 未达标)."""
    if lang == "en":
        if isinstance(value, bool):
            return "true" if value else "false"
        return repr(float(value)) if key == "rate" else value
    if key == "rate" and value is not None:
        return _pct(float(value))
    return _zh_value(key, value)


def rates_csv(sections: list[tuple[str, str, list[dict[str, Any]]]], lang: str = "zh") -> str:
    """One CSV of rate rows: sections are (kind, by, rows); with several kinds a kind column comes first."""
    if lang not in LANGS:
        raise ValueError(f"lang must be zh or en, not {lang!r}")
    keys: list[str] = []
    for _kind, by, rows in sections:
        keys += [k for k in rate_keys(rows, by) if k not in keys]
    several = len(sections) > 1
    if lang == "en":
        head = (["kind", "name"] if several else [sections[0][1]]) + keys
    else:
        head = (["类别", "名称"] if several else [rate_label(sections[0][1])]) + [rate_label(k) for k in keys]
    body = []
    for kind, by, rows in sections:
        lead = [kind if lang == "en" else rate_label(by)] if several else []
        for r in rows:
            body.append(lead + [r[by]] + [_csv_value(k, r.get(k), lang) for k in keys])
    return sheets.csv_text(head, body)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1)


def to_csv(report: dict[str, Any], lang: str = "zh") -> str:
    """Teachers then classes in one table (UTF-8 with BOM): kind, name and the rate columns."""
    return rates_csv([("teacher", "teacher", report["teachers"]), ("class", "class", report["classes"])], lang)


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "未公布"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """Lessons left out, lessons awaiting a fault review, and the corrections since publication."""
    out = []
    if report.get("excluded"):
        out.append(f"经确认影响上课、不计入应上课时：{report['excluded']} 节")
    if report.get("awaiting_review"):
        out.append(f"故障登记待核实、暂按实际计入：{report['awaiting_review']} 节")
    return out + correction_lines(report)


def correction_lines(report: dict[str, Any]) -> list[str]:
    """A published week's corrections as a register writes them: when, who, what, figures before -> after."""
    out = []
    for c in report.get("corrections", []):
        what = "确认影响上课" if c["review"] == "confirmed" else "判定为误报"
        span = f"（{_when(c.get('from'))} 至 {_when(c.get('to')) if c.get('to') else '恢复'}）" \
            if c["review"] == "confirmed" else ""
        changes = "；".join(f"{x['name']} {_fig(x['before'])} → {_fig(x['after'])}" for x in c.get("changes", []))
        out.append(f"更正 {_when(c['t'])} {c['by']}：故障登记 {c['device']} {codes.fault_label(c['code'])} {what}{span}"
                   f"{'，' + changes if changes else '，使用率不变'}")
    return out


def _fig(r: dict[str, Any] | None) -> str:
    return "不计" if not r else f"{r['used']}/{r['scheduled']}（{_pct(r['rate'])}）"


def title(report: dict[str, Any]) -> str:
    name = report.get("school_name") or report["school"]
    if report.get("week"):
        return f"{name} 班班通使用情况周汇总 {report['week']}"
    if report.get("month"):
        y, m = str(report["month"]).split("-")
        return f"{name} 班班通使用情况月汇总 {y}年{int(m)}月"
    return f"{name} 班班通使用情况汇总 {report['start']} 至 {report['end']}"


def period_text(report: dict[str, Any]) -> str:
    span = f"{report['start']} 至 {report['end']}"
    return f"{span}（周一至周日）" if report.get("week") else span


def worst_first(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (float(r["rate"]), str(r[by])))


def school_rate(report: dict[str, Any]) -> float | None:
    """The school's rate: used / scheduled over all its lessons (the class rows), as the dashboard's
    trend computes it from /api/v1/usage/classes."""
    scheduled = sum(int(r["scheduled"]) for r in report["classes"])
    return sum(int(r["used"]) for r in report["classes"]) / scheduled if scheduled else None


def lesson_totals(report: dict[str, Any]) -> list[tuple[str, int]]:
    """(label, sum) of every lesson-count column of the class rows: scheduled, used, excluded, ..."""
    rows = report["classes"]
    out = []
    for k in rate_keys(rows, "class"):
        values = [r.get(k) for r in rows]
        if k != "rate" and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            out.append((f"{rate_label(k)}（节）", sum(values)))  # type: ignore[arg-type]
    return out


def summary(report: dict[str, Any]) -> list[tuple[str, Any, str | None]]:
    """The figures of the 汇总 sheet: (label, value, number format)."""
    teachers, classes = report["teachers"], report["classes"]
    rate = school_rate(report)
    rows: list[tuple[str, Any, str | None]] = [
        ("统计周" if report.get("week") else "统计范围", report.get("week") or report.get("range"), None),
        ("起止日期", period_text(report), None),
        ("全校使用率", rate if rate is not None else "无课", "0.0%"),
        ("达标线", float(report["threshold"]), "0%"),
        ("教师人数", len(teachers), None),
        ("未达标教师人数", sum(1 for r in teachers if r["below_threshold"]), None),
        ("班级数", len(classes), None),
        ("未达标班级数", sum(1 for r in classes if r["below_threshold"]), None)]
    rows += [(label, n, None) for label, n in lesson_totals(report)]
    rows += [("计为已使用的最少分钟数", float(report["min_use_minutes"]), None),
             ("生成时间", _when(report.get("generated")), None),
             ("公布时间", _when(report.get("published")) if report.get("week") else "（按日期统计，不公布）", None)]
    return rows


def _summary_sheet(ws: Any, report: dict[str, Any], stamp: str) -> None:
    from openpyxl.styles import Font

    head = sheets.table_sheet(ws, title(report), stamp, ["项目", "数值"], [(a, b) for a, b, _ in summary(report)])
    for i, (_label, _value, fmt) in enumerate(summary(report)):
        if fmt:
            ws.cell(head + 1 + i, 2).number_format = fmt
    ws.auto_filter.ref = None
    for label, by, rows in (("未达标教师（使用率由低到高）", "teacher", report["teachers"]),
                            ("未达标班级（使用率由低到高）", "class", report["classes"])):
        low = [r for r in worst_first(rows, by) if r["below_threshold"]]
        ws.append([])
        ws.append([label, "、".join(f"{r[by]} {_pct(float(r['rate']))}" for r in low) or "无"])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
    for heading, lines in (("说明", report.get("notes", [])), ("更正记录", correction_lines(report))):
        if lines:
            ws.append([])
            ws.append([heading])
            ws.cell(ws.max_row, 1).font = Font(bold=True)
            for n in lines:
                ws.append([n])
    ws.column_dimensions["B"].width = 40


def _rate_sheet(ws: Any, report: dict[str, Any], by: str, stamp: str) -> None:
    from openpyxl.styles import Font, PatternFill

    rows = worst_first(report["teachers" if by == "teacher" else "classes"], by)
    keys = rate_keys(rows, by)
    body = [[r[by]] + [_zh_value(k, r.get(k)) for k in keys] for r in rows]
    name = f"{title(report)} · {rate_label(by)}使用率"
    head = sheets.table_sheet(ws, name, stamp, [rate_label(by)] + [rate_label(k) for k in keys], body,
                              title_row=False)
    red, dark = PatternFill("solid", fgColor="F8D7DA"), Font(color="9C0006", bold=True)
    for i, r in enumerate(rows):
        row = head + 1 + i
        if "rate" in keys:
            ws.cell(row, 2 + keys.index("rate")).number_format = "0.0%"
        if r.get("below_threshold"):
            for c in ws[row]:
                c.fill = red
            if "below_threshold" in keys:
                ws.cell(row, 2 + keys.index("below_threshold")).font = dark


LESSON_COLUMNS = ["日期", "星期", "班级", "节次", "时间", "任课教师", "学科", "使用分钟", "情况", "代课", "数据可信度"]


def _lesson_cells(r: dict[str, Any]) -> list[Any]:
    weekday = "一二三四五六日"[date.fromisoformat(r["date"]).isoweekday() - 1]
    return [r["date"], f"周{weekday}", r["class"], r["period"], f"{r['start']}-{r['end']}", r["teacher"],
            r["subject"], r["in_use_minutes"], status_cell(r),
            "代课" if r.get("substitute") else "", r.get("certainty_zh") or ""]


def to_xlsx(report: dict[str, Any]) -> bytes:
    """汇总 (figures), 教师使用率 and 班级使用率 (worst first, 未达标 highlighted), 巡课登记 (every lesson)."""
    from openpyxl import Workbook

    stamp = f"生成于 {_when(report.get('generated'))}"
    wb = Workbook()
    _summary_sheet(wb.active, report, stamp)
    wb.active.title = "汇总"
    _rate_sheet(wb.create_sheet("教师使用率"), report, "teacher", stamp)
    _rate_sheet(wb.create_sheet("班级使用率"), report, "class", stamp)
    sheets.table_sheet(wb.create_sheet("巡课登记"), f"{title(report)} · 巡课登记", stamp, LESSON_COLUMNS,
                       [_lesson_cells(r) for r in report["lessons"]], title_row=False, landscape=True)
    return sheets.workbook_bytes(wb)


CSS = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #999;padding:3px 6px;font-size:.9em;text-align:left}
td.n{text-align:right}tr.low td{background:#f8d7da}.bar{background:#e9ecef;width:10em;height:.9em;display:inline-block}
.bar i{display:block;height:100%;background:#2b8a3e}tr.low .bar i{background:#c92a2a}
.line{border-left:2px dashed #000;height:1em}@media print{body{margin:0}.noprint{display:none}}"""


def _rate_table(rows: list[dict[str, Any]], key: str, threshold: float) -> str:
    """The rate rows (worst first) with a bar for the rate; every column of the rate function."""
    e = html.escape
    keys = rate_keys(rows, key)
    head = "".join(f"<th>{e(rate_label(k))}</th>" + ("<th></th>" if k == "rate" else "") for k in [key] + keys)
    out = [f"<table><tr>{head}</tr>"]
    for r in worst_first(rows, key):
        cells = [f"<td>{e(str(r[key]))}</td>"]
        for k in keys:
            v = r.get(k)
            if k == "rate":
                width = max(0.0, min(1.0, float(r["rate"]))) * 100
                cells.append(f"<td class=n>{_pct(float(r['rate']))}</td><td><span class=bar title=\"达标线 "
                             f"{_pct(threshold)}\"><i style=\"width:{width:.0f}%\"></i></span></td>")
            else:
                v = _zh_value(k, v)
                cells.append(f"<td{' class=n' if isinstance(v, (int, float)) else ''}>"
                             f"{e('' if v is None else str(v))}</td>")
        out.append(f"<tr class=\"{'low' if r.get('below_threshold') else ''}\">{''.join(cells)}</tr>")
    out.append("</table>")
    return "".join(out)


def to_html(report: dict[str, Any]) -> str:
    """A printable page (A4): summary, teachers' and classes' rates with bars, below-threshold lists."""
    e = html.escape
    th = float(report["threshold"])
    low_t = "、".join(e(r["teacher"]) for r in worst_first(report["teachers"], "teacher") if r["below_threshold"])
    low_c = "、".join(e(r["class"]) for r in worst_first(report["classes"], "class") if r["below_threshold"])
    published = f"公布时间：{_when(report.get('published'))}" if report.get("week") else \
        f"生成时间：{_when(report.get('generated'))}"
    parts = [f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{e(title(report))}</title>"
             f"<style>{CSS}</style><h1>{e(title(report))}</h1>",
             f"<p>{e(period_text(report))}。达标线 {_pct(th)}；"
             f"一节课使用满 {report['min_use_minutes']:g} 分钟计为已使用。{published}</p>"]
    rate = school_rate(report)
    parts.append(f"<p><b>全校使用率：</b>{_pct(rate) if rate is not None else '无课'}</p>")
    for line in summary_lines(report):
        parts.append(f"<p>{e(line)}。</p>")
    for n in report.get("notes", []):
        parts.append(f"<p>{e(n)}</p>")
    parts.append(f"<p><b>未达到使用率的教师：</b>{low_t or '无'}</p><p><b>未达到使用率的班级：</b>{low_c or '无'}</p>")
    parts.append("<h2>教师使用率</h2>" + _rate_table(report["teachers"], "teacher", th))
    parts.append("<h2>班级使用率</h2>" + _rate_table(report["classes"], "class", th))
    return "".join(parts) + "</html>"


def status_cell(r: dict[str, Any]) -> str:
    """A lesson's status in Chinese, with the note of a lesson taught elsewhere (上课地点 / 外出上课 ...)."""
    label = STATUS_ZH.get(r["status"], r["status"])
    return f"{label}（{r['note']}）" if r.get("note") else label


PATROL_COLUMNS = ["班级", "节次", "时间", "任课教师", "学科", "使用分钟", "情况", "代课"]


def _patrol_cells(r: dict[str, Any]) -> list[Any]:
    return [r["class"], r["period"], f"{r['start']}-{r['end']}", r["teacher"], r["subject"], r["in_use_minutes"],
            status_cell(r), "代课" if r.get("substitute") else ""]


def patrol_title(record: dict[str, Any]) -> str:
    return f"{record.get('school_name') or record['school']} 班班通巡课登记 {record['date']}"


def patrol_html(record: dict[str, Any]) -> str:
    """The day's patrol record (巡课登记) as a printable page: counts by status, then every lesson."""
    e = html.escape
    counts = "；".join(f"{STATUS_ZH.get(k, k)} {v} 节" for k, v in sorted(record["counts"].items()))
    rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in _patrol_cells(r)) + "</tr>"
                   for r in record["lessons"])
    head = "".join(f"<th>{c}</th>" for c in PATROL_COLUMNS)
    return (f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{e(patrol_title(record))}</title>"
            f"<style>{CSS}</style><h1>{e(patrol_title(record))}</h1><p>{e(counts) or '当日无课'}</p>"
            f"<table><tr>{head}</tr>{rows}</table></html>")


def patrol_xlsx(record: dict[str, Any]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "巡课登记"
    counts = "；".join(f"{STATUS_ZH.get(k, k)} {v} 节" for k, v in sorted(record["counts"].items()))
    sheets.table_sheet(ws, patrol_title(record), f"生成于 {_when(record.get('made'))}", PATROL_COLUMNS,
                       [_patrol_cells(r) for r in record["lessons"]], subtitle=counts or "当日无课")
    return sheets.workbook_bytes(wb)
