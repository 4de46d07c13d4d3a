"""Files as Chinese schools keep them, made by the tests: GBK CSV with Chinese headers, .xls, .xlsx grids
per class (merged cells) and the 总课表 by teacher; each imports the same lessons as the UTF-8 CSV."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xlwt
from openpyxl import Workbook

from collector.school.import_errors import ImportError_
from collector.school.import_report import plan_lines
from collector.school.imports import plan_import, run_import

CLASSES = ["三(1)班", "三(2)班", "三(3)班"]
SUBJECTS = ["语文", "数学", "英语", "科学"]
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫"
WD_ZH = "一二三四五"
PERIODS = 4


def teacher(subject: str, klass: str) -> str:
    return SURNAMES[SUBJECTS.index(subject) * 3 + CLASSES.index(klass)] + "老师"


def lessons() -> list[tuple[str, int, int, str, str]]:
    """(class, weekday, period, teacher, subject); 三(2)班 has a double 数学 on Monday, periods 1-2."""
    out = []
    for ci, c in enumerate(CLASSES):
        for wd in range(1, 6):
            for p in range(1, PERIODS + 1):
                subj = SUBJECTS[(ci + wd + p) % 4]
                if (c, wd, p) in (("三(2)班", 1, 1), ("三(2)班", 1, 2)):
                    subj = "数学"
                if (c, wd, p) == ("三(3)班", 5, 4):
                    continue  # a free period
                out.append((c, wd, p, teacher(subj, c), subj))
    return out


LESSONS = lessons()
BY_SLOT = {(c, wd, p): (t, s) for c, wd, p, t, s in LESSONS}


def stored(db: Any, school: str) -> list[tuple[Any, ...]]:
    return [(r["class"], int(r["weekday"]), int(r["period"]), r["teacher"], r["subject"], r["weeks"]) for r in db.query(
        "SELECT * FROM timetable WHERE school = ? ORDER BY class, weekday, period", (school,))]


def reference(db: Any, tmp_path: Path) -> list[tuple[Any, ...]]:
    f = tmp_path / "timetable-utf8.csv"
    f.write_text("class,weekday,period,teacher,subject\n" + "".join(f"{c},{wd},{p},{t},{s}\n"
                                                                   for c, wd, p, t, s in LESSONS), encoding="utf-8")
    assert run_import(db, "timetable", "ref", f) == len(LESSONS)  # the first school of an empty store
    rows = stored(db, "ref")
    assert len(rows) == len(LESSONS) == 59
    return rows


def assert_same_as_reference(db: Any, tmp_path: Path, school: str, path: Path) -> None:
    ref = reference(db, tmp_path)
    run_import(db, "timetable", school, path, create_school=True)
    assert stored(db, school) == ref


def test_gbk_csv_with_chinese_headers_and_values(db: Any, tmp_path: Path) -> None:
    f = tmp_path / "课表.csv"
    text = "班级,星期,节次,教师,科目\r\n" + "".join(
        f"{c},{'星期' if p % 2 else '周'}{WD_ZH[wd - 1]},第{p}节,{t},{s}\r\n" for c, wd, p, t, s in LESSONS)
    f.write_bytes(text.replace("三(1)班", "三（1）班").encode("gbk"))  # full-width brackets too
    with pytest.raises(UnicodeDecodeError):
        f.read_bytes().decode("utf-8")
    plan = plan_import(db, "timetable", "s1", f)
    assert plan.encoding == "gbk" and "编码：GBK（Excel 中文版的 CSV）" in plan_lines(plan, "zh")
    assert_same_as_reference(db, tmp_path, "gbk", f)


def test_excel_unicode_text_utf16_tabs(db: Any, tmp_path: Path) -> None:
    f = tmp_path / "课表.txt"
    text = "班级\t星期\t节次\t教师\t科目\r\n" + "".join(f"{c}\t{wd}\t{p}\t{t}\t{s}\r\n" for c, wd, p, t, s in LESSONS)
    f.write_bytes(text.encode("utf-16"))  # with its BOM, as Excel writes it
    assert plan_import(db, "timetable", "s1", f).encoding == "utf-16"
    assert_same_as_reference(db, tmp_path, "utf16", f)


def test_xls_with_chinese_headers(db: Any, tmp_path: Path) -> None:
    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("课表")
    ws.write_merge(0, 0, 0, 4, "2026秋季学期课程表")  # a title row above the header
    for i, h in enumerate(["班级", "星期", "节次", "教师", "科目"]):
        ws.write(1, i, h)
    for r, (c, wd, p, t, s) in enumerate(LESSONS, start=2):
        ws.write(r, 0, c)
        ws.write(r, 1, ["Monday", "Tue", "星期三", "周四", "５"][wd - 1])  # full-width 5
        ws.write(r, 2, float(p) if p != 3 else "三")
        ws.write(r, 3, t)
        ws.write(r, 4, s)
    f = tmp_path / "课表.xls"
    wb.save(str(f))
    assert_same_as_reference(db, tmp_path, "xls", f)


def class_grid(ws: Any, klass: str, title_in_cell: bool) -> None:
    """One class's grid: title row, header 星期一…星期五, a 上午/下午 column, 第1节…, a 午休 row."""
    if title_in_cell:
        ws.append([f"{klass}课程表"])
        ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=7)
    ws.append(["", "节次", "星期一", "星期二", "星期三", "星期四", "星期五"])
    base = ws.max_row
    for p in range(1, PERIODS + 1):
        row = ["上午" if p <= 2 else "下午", f"第{'１' if p == 1 else p}节"]
        for wd in range(1, 6):
            got = BY_SLOT.get((klass, wd, p))
            sep = "\n" if wd % 2 else "\u3000"  # a line break or a full-width space
            row.append(f"{got[1]}{sep}{got[0]}" if got else "")
        ws.append(row)
        if p == 2:
            ws.append(["午休"])
    ws.merge_cells(start_row=base + 1, start_column=1, end_row=base + 2, end_column=1)  # 上午
    if klass == "三(2)班":  # the double lesson: one cell over two rows
        ws.cell(base + 2, 3).value = None
        ws.merge_cells(start_row=base + 1, start_column=3, end_row=base + 2, end_column=3)


def test_xlsx_grid_for_three_classes_with_merged_cells(db: Any, tmp_path: Path) -> None:
    wb = Workbook()
    wb.remove(wb.active)
    for i, klass in enumerate(CLASSES):
        ws = wb.create_sheet(klass if i != 1 else f"Sheet{i + 1}")  # 三(2)班's name is only in its title cell
        class_grid(ws, klass, title_in_cell=i != 0)
    f = tmp_path / "班级课表.xlsx"
    wb.save(f)
    plan = plan_import(db, "timetable", "s1", f)
    row = plan.parsed.rows[("三(2)班", 1, 2, "all")]
    assert (row.sheet, row.cell) == ("Sheet2", "C4")  # the merged cell's second row
    assert_same_as_reference(db, tmp_path, "grid", f)


def test_zongkebiao_by_teacher(db: Any, tmp_path: Path) -> None:
    """One sheet of teachers' grids stacked (a 教师：… header cell each), and one sheet per teacher."""
    teachers = sorted({t for _c, _wd, _p, t, _s in LESSONS})
    wb = Workbook()
    stacked = wb.active
    stacked.title = "总课表"
    for i, name in enumerate(teachers):
        ws = stacked if i < 6 else wb.create_sheet(name)
        if i < 6:
            ws.append([f"教师：{name}"])
        ws.append(["节次", "周一", "周二", "周三", "周四", "周五"])
        for p in range(1, PERIODS + 1):
            row = [str(p)]
            for wd in range(1, 6):
                hit = [(c, s) for c, w, pp, t, s in LESSONS if t == name and (w, pp) == (wd, p)]
                row.append(f"{hit[0][1]} {hit[0][0]}" if hit else "")
            ws.append(row)
        ws.append([])
    f = tmp_path / "总课表.xlsx"
    wb.save(f)
    assert_same_as_reference(db, tmp_path, "byteacher", f)


def test_wide_zongkebiao_one_row_per_teacher(db: Any, tmp_path: Path) -> None:
    """The 总课表 as one table: a row per teacher, 星期一…星期五 merged over their periods 1…4."""
    wb = Workbook()
    ws = wb.active
    ws.append(["2026秋季学期教师总课表"])
    ws.append(["教师"] + [f"星期{WD_ZH[wd - 1]}" if p == 1 else None for wd in range(1, 6) for p in range(1, 5)])
    ws.append([None] + [p for _wd in range(1, 6) for p in range(1, 5)])
    for wd in range(5):
        ws.merge_cells(start_row=2, start_column=2 + 4 * wd, end_row=2, end_column=5 + 4 * wd)
    for name in sorted({t for _c, _wd, _p, t, _s in LESSONS}):
        slots = {(w, p): f"{s}\n{c}" for c, w, p, t, s in LESSONS if t == name}
        ws.append([name] + [slots.get((wd, p)) for wd in range(1, 6) for p in range(1, 5)])
    f = tmp_path / "教师总课表.xlsx"
    wb.save(f)
    assert_same_as_reference(db, tmp_path, "wide", f)


def test_errors_name_file_line_column_in_both_languages(db: Any, tmp_path: Path) -> None:
    f = tmp_path / "课表.csv"
    f.write_bytes("班级,星期,节次,教师,科目\n三(1)班,星期一,第1节,王,数学\n三(1)班,星期八,2,李,语文\n".encode("gbk"))
    with pytest.raises(ImportError_) as e:
        run_import(db, "timetable", "s1", f)
    assert str(e.value).startswith("课表.csv: line 3, column weekday: '星期八' is not a weekday (hint: ")
    zh = e.value.render("zh")
    assert zh.startswith("课表.csv：第 3 行，“星期”列：“星期八”不是星期") and "提示：" in zh
    f.write_text("班级,星期,节次,老师\n三(1)班,1,1,王\n", encoding="utf-8")
    with pytest.raises(ImportError_) as e:
        run_import(db, "timetable", "s1", f)
    assert "line 1" in str(e.value) and "missing column(s) subject" in str(e.value)
    grid = tmp_path / "grid.xlsx"
    wb = Workbook()
    wb.active.append(["节次", "星期一", "星期二", "星期三"])
    wb.active.append(["第1节", "语文 王", "", ""])
    wb.save(grid)
    with pytest.raises(ImportError_) as e:
        run_import(db, "timetable", "s1", grid)
    assert "sheet Sheet" in str(e.value) and "which class or teacher" in str(e.value)
    assert db.query("SELECT COUNT(*) AS n FROM timetable")[0]["n"] == 0
    assert db.query("SELECT COUNT(*) AS n FROM schools")[0]["n"] == 0  # nothing written, not even the school
