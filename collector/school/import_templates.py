"""Downloadable templates (XLSX, Chinese headers, example rows) for every import kind.

The first sheet is the table to fill in (header row from collector.school.import_columns, required
columns in bold); the second, 说明, says what each column takes. A template with its example
rows imports as it is.
"""
from __future__ import annotations

import io

from collector.school.import_columns import COLUMNS, KIND_LABELS, KINDS

EXAMPLES: dict[str, list[list[str]]] = {
    "devices": [["pc-701", "七年级1班", "701", "教学楼", "7", "10.1.7.21"],
                ["pc-702", "七年级2班", "702", "教学楼", "7", ""]],
    "bell": [["1", "08:00", "08:40", "", ""], ["2", "08:50", "09:30", "", ""], ["3", "10:00", "10:40", "", ""]],
    "timetable": [["七年级1班", "星期一", "第1节", "张老师", "语文"],
                  ["七年级1班", "星期一", "第2节", "李老师", "数学"],
                  ["七年级2班", "周二", "3", "王老师", "英语", "单周"]],
    "substitutions": [["2026-09-07", "七年级1班", "第1节", "赵老师", "语文"]],
    "calendar": [["2026-09-01", "开学", "", "2026秋季学期"], ["2026-10-01", "放假", "", ""],
                 ["2026-10-11", "调休", "星期四", ""], ["2027-01-20", "学期结束", "", "2026秋季学期"]],
    "assets": [["ZC-2024-0101", "电脑", "701", "教学楼", "ThinkCentre M720t", "PC0ABCDE", "联想", "2024-08-20",
                "2027-08-19", "某某科技有限公司", "在用", "pc-701"],
               ["ZC-2024-0102", "一体机", "701", "教学楼", "CB86EA", "", "希沃", "2024-08-20", "2029-08-19", "",
                "在用"],
               ["ZC-2024-0103", "音箱", "701", "教学楼", "", "", "", "", "", "", "维修"]],
}
HELP: dict[str, str] = {
    "device": "设备名（代理程序的设备 ID）：字母、数字、- 和 _",
    "class": "班级名称，与课表一致，如 七年级1班、三(2)班",
    "room": "教室（可不填）", "building": "楼（可不填）", "floor": "楼层（可不填）",
    "projector": "投影机或一体机的 PJLink 地址：IP 或主机名，可加 :端口，如 10.1.7.21（可不填）",
    "period": "节次：3 或 第3节", "start": "上课时间 HH:MM", "end": "下课时间 HH:MM",
    "schedule": "作息名称，如 夏季、冬季（可不填）", "valid_from": "该作息的启用日期（多套作息时必填）",
    "weekday": "星期：1-7、星期一、周一 或 Monday", "teacher": "任课教师姓名（与用户名一致）",
    "subject": "科目", "weeks": "每周（不填）、单周 或 双周", "date": "日期 YYYY-MM-DD",
    "kind": "放假、调休（上课）、考试、开学、学期结束", "follows_weekday": "调休上课时按星期几的课表",
    "term": "学期名称（开学、学期结束行）", "note": "备注（设备清单导入；校历中不导入）",
    "asset": "资产编号（学校的固定资产编号，每件设备一个）",
    "item": "品类：电脑、一体机、投影仪、白板、音箱、中控、其他",
    "model": "型号（可不填）", "serial": "序列号（可不填；电脑由代理程序自动填写）", "maker": "品牌（可不填）",
    "purchase_date": "购置日期 YYYY-MM-DD（可不填）", "warranty_end": "保修截止日期 YYYY-MM-DD（可不填）",
    "supplier": "供应商（可不填）", "state": "状态：在用（不填即在用）、维修 或 报废",
    "group": "任课教师的教研组，如 数学组（可不填）",
}


def template_xlsx(kind: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    required, optional = KINDS[kind]
    cols = required + optional
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = KIND_LABELS[kind]
    ws.append([COLUMNS[c][0] for c in cols])
    for cell, col in zip(ws[1], cols, strict=True):
        cell.font = Font(bold=col in required)
        ws.column_dimensions[cell.column_letter].width = 14
    for row in EXAMPLES[kind]:
        ws.append(row + [""] * (len(cols) - len(row)))
    for r in ws.iter_rows(min_row=2):
        for c in r:
            c.number_format = "@"  # text: Excel keeps 08:00 and 2026-09-01 as typed
    ws.freeze_panes = "A2"
    info = wb.create_sheet("说明")
    info.append(["列", "必填", "内容"])
    for c in cols:
        info.append([COLUMNS[c][0], "是" if c in required else "否", HELP[c]])
    info.column_dimensions["C"].width = 48
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def template_name(kind: str) -> str:
    return f"{KIND_LABELS[kind]}模板-{kind}.xlsx"
