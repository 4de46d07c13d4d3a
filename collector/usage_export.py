"""Weekly report as JSON, CSV, XLSX (openpyxl) and printable HTML (Chinese)."""
from __future__ import annotations

import csv
import html
import io
import json
from datetime import datetime
from typing import Any

from collector.attribution import STATUS_ZH

CSV_COLUMNS = ["kind", "name", "scheduled", "used", "rate", "below_threshold", "excluded_faulty"]


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1)


def to_csv(report: dict[str, Any]) -> str:
    """One table: kind (teacher / class), name, scheduled, used, rate (0..1), below_threshold, excluded_faulty."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for kind, key, rows in (("teacher", "teacher", report["teachers"]), ("class", "class", report["classes"])):
        for r in rows:
            w.writerow([kind, r[key], r["scheduled"], r["used"], repr(float(r["rate"])),
                        "true" if r["below_threshold"] else "false", r.get("excluded_faulty", 0)])
    return out.getvalue()


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _when(t: float | None) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "未公布"


def title(report: dict[str, Any]) -> str:
    return f"{report.get('school_name') or report['school']} 班班通使用情况周汇总 {report['week']}"


def to_xlsx(report: dict[str, Any]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill

    wb = Workbook()
    ws = wb.active
    ws.title = "汇总"
    red = PatternFill("solid", fgColor="F8D7DA")
    ws.append([title(report)])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([f"{report['start']} 至 {report['end']}（周一至周日）"])
    ws.append([f"达标线 {_pct(report['threshold'])}；一节课使用满 {report['min_use_minutes']:g} 分钟计为已使用"])
    ws.append([f"公布时间：{_when(report.get('published'))}"])
    if report.get("excluded_faulty"):
        ws.append([f"因设备故障未计入的课时：{report['excluded_faulty']} 节（不计入应上课时）"])
    for n in report.get("notes", []):
        ws.append([n])
    for sheet, key, label, rows in (("教师使用率", "teacher", "教师", report["teachers"]),
                                    ("班级使用率", "class", "班级", report["classes"])):
        s = wb.create_sheet(sheet)
        s.append([label, "应上课时", "已使用", "使用率", "是否达标", "故障未计"])
        for c in s[1]:
            c.font = Font(bold=True)
        for r in rows:
            s.append([r[key], r["scheduled"], r["used"], r["rate"], "未达标" if r["below_threshold"] else "达标",
                      r.get("excluded_faulty", 0)])
            s.cell(s.max_row, 4).number_format = "0.0%"
            if r["below_threshold"]:
                for c in s[s.max_row]:
                    c.fill = red
        s.column_dimensions["A"].width = 16
    s = wb.create_sheet("巡课登记")
    s.append(["日期", "班级", "节次", "时间", "任课教师", "学科", "使用分钟", "情况", "代课", "数据可信度"])
    for c in s[1]:
        c.font = Font(bold=True)
    for r in report["lessons"]:
        s.append([r["date"], r["class"], r["period"], f"{r['start']}-{r['end']}", r["teacher"], r["subject"],
                  r["in_use_minutes"], status_cell(r), "代课" if r.get("substitute") else "",
                  r.get("certainty_zh") or ""])  # measured / device offline / data missing (collector.certainty)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


CSS = """body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #999;padding:3px 6px;font-size:.9em;text-align:left}
td.n{text-align:right}tr.low td{background:#f8d7da}.bar{background:#e9ecef;width:10em;height:.9em;display:inline-block}
.bar i{display:block;height:100%;background:#2b8a3e}tr.low .bar i{background:#c92a2a}
.line{border-left:2px dashed #000;height:1em}@media print{body{margin:0}.noprint{display:none}}"""


def _rate_table(rows: list[dict[str, Any]], key: str, label: str, threshold: float) -> str:
    out = [f"<table><tr><th>{label}</th><th>应上课时</th><th>已使用</th><th>使用率</th><th></th><th>达标</th></tr>"]
    for r in rows:
        width = max(0.0, min(1.0, float(r["rate"]))) * 100
        out.append(f"<tr class=\"{'low' if r['below_threshold'] else ''}\"><td>{html.escape(str(r[key]))}</td>"
                   f"<td class=n>{r['scheduled']}</td><td class=n>{r['used']}</td><td class=n>{_pct(r['rate'])}</td>"
                   f"<td><span class=bar title=\"达标线 {_pct(threshold)}\"><i style=\"width:{width:.0f}%\"></i>"
                   f"</span></td><td>{'未达标' if r['below_threshold'] else '达标'}</td></tr>")
    out.append("</table>")
    return "".join(out)


def to_html(report: dict[str, Any]) -> str:
    """A printable page (A4): summary, teachers' and classes' rates with bars, below-threshold lists."""
    e = html.escape
    th = float(report["threshold"])
    low_t = "、".join(e(r["teacher"]) for r in report["teachers"] if r["below_threshold"]) or "无"
    low_c = "、".join(e(r["class"]) for r in report["classes"] if r["below_threshold"]) or "无"
    parts = [f"<!doctype html><html lang=zh-CN><meta charset=utf-8><title>{e(title(report))}</title>"
             f"<style>{CSS}</style><h1>{e(title(report))}</h1>",
             f"<p>{report['start']} 至 {report['end']}（周一至周日）。达标线 {_pct(th)}；"
             f"一节课使用满 {report['min_use_minutes']:g} 分钟计为已使用。"
             f"公布时间：{_when(report.get('published'))}</p>"]
    if report.get("excluded_faulty"):
        parts.append(f"<p>因设备故障未计入应上课时：{report['excluded_faulty']} 节。</p>")
    for n in report.get("notes", []):
        parts.append(f"<p>{e(n)}</p>")
    parts.append(f"<p><b>未达到使用率的教师：</b>{low_t}</p><p><b>未达到使用率的班级：</b>{low_c}</p>")
    parts.append("<h2>教师使用率</h2>" + _rate_table(report["teachers"], "teacher", "教师", th))
    parts.append("<h2>班级使用率</h2>" + _rate_table(report["classes"], "class", "班级", th))
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
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "巡课登记"
    ws.append([patrol_title(record)])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append(PATROL_COLUMNS)
    for r in record["lessons"]:
        ws.append(_patrol_cells(r))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
