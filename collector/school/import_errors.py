"""Import errors and warnings in the user's language: Chinese (the dashboard's default) and English
(the command line's language, and the dashboard's when English is chosen).

Each message has a key in MESSAGES: (Chinese, English, Chinese hint, English hint), with
%(name)s parameters. An ImportError_ keeps the key, the parameters and where the problem is
(the user's file name, line, column, sheet); ``str()`` is the English line the CLI prints,
``render("zh")`` the Chinese one the import page shows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.errors import BbtError

MESSAGES: dict[str, tuple[str, str, str, str]] = {
    "no_file": ("文件不存在", "no such file", "", ""),
    "bad_encoding": ("无法识别文件的编码（不是 UTF-8、GBK 或 GB18030 文本）", "not UTF-8, GBK or GB18030 text",
                     "在 Excel 中另存为“CSV UTF-8（逗号分隔）”或 .xlsx 再导入",
                     "save it from Excel as \"CSV UTF-8\" or .xlsx"),
    "bad_csv": ("CSV 格式错误：%(detail)s", "bad CSV: %(detail)s", "检查引号是否成对", "check that quotes are paired"),
    "bad_xlsx": ("不是可读取的 .xlsx 文件（%(detail)s）", "not a readable .xlsx file (%(detail)s)",
                 "用 Excel 打开后另存为 .xlsx", "open it in Excel and save it again as .xlsx"),
    "bad_xls": ("不是可读取的 .xls 文件（%(detail)s）", "not a readable .xls file (%(detail)s)",
                "用 Excel 打开后另存为 .xlsx", "open it in Excel and save it again as .xlsx"),
    "empty": ("文件是空的", "the file is empty", "", ""),
    "no_rows": ("文件中只有列名，没有数据行", "the file has a header but no rows",
                "要清空这类数据，请用“替换全部”导入", "to clear this kind of data, import it with --replace"),
    "missing_columns": ("缺少列：%(columns)s", "missing column(s) %(columns)s",
                        "第一行应为列名：%(expected)s（可下载模板）",
                        "the first row names the columns: %(expected)s (download the template)"),
    "unknown_columns": ("无法识别的列：%(columns)s", "unknown column(s) %(columns)s",
                        "可用的列：%(expected)s", "expected %(expected)s"),
    "repeated_column": ("列“%(column)s”出现了两次", "column %(column)s appears twice", "", ""),
    "extra_cells": ("单元格比列名多", "more cells than columns", "删除多余的单元格或补上列名",
                    "delete the extra cells or name their column"),
    "empty_value": ("不能为空", "is empty", "", ""),
    "out_of_range": ("%(value)s 不在 %(lo)s 到 %(hi)s 之间", "%(value)s is not between %(lo)s and %(hi)s", "", ""),
    "bad_weekday": ("“%(value)s”不是星期", "%(value)r is not a weekday",
                    "写 1-7、星期一、周一 或 Monday", "write 1-7, 星期一, 周一 or Monday"),
    "bad_period": ("“%(value)s”不是节次", "%(value)r is not a period", "写 3 或 第3节", "write 3 or 第3节"),
    "bad_time": ("“%(value)s”不是时间 HH:MM", "%(value)r is not a time HH:MM", "例如 08:00", "e.g. 08:00"),
    "bad_date": ("“%(value)s”不是日期", "%(value)r is not a date YYYY-MM-DD", "例如 2026-09-01",
                 "e.g. 2026-09-01"),
    "bad_device": ("“%(value)s”不是有效的设备名", "%(value)r must match %(pattern)s",
                   "只用字母、数字、- 和 _，最多 64 个字符", "letters, digits, - and _ only, at most 64"),
    "bad_item": ("“%(value)s”不是设备品类", "%(value)r is not an item kind", "写 %(items)s",
                 "write one of %(items)s"),
    "bad_state": ("“%(value)s”不是设备状态", "%(value)r is not an item state", "写 在用、维修 或 报废",
                  "write 在用, 维修 or 报废"),
    "repeats": ("与第 %(line)s 行重复", "%(what)s repeats line %(line)s", "", ""),
    "end_before_start": ("结束时间 %(end)s 不晚于开始时间 %(start)s", "%(end)s is not after start %(start)s", "", ""),
    "overlap": ("第 %(p2)s 节在第 %(p1)s 节结束前开始", "period %(p2)s starts before period %(p1)s ends", "", ""),
    "vf_taken": ("%(vf)s 已是作息“%(other)s”的启用日期", "%(vf)s is already the start of schedule %(other)r", "", ""),
    "vf_needed": ("文件中有多套作息时，每行都要写启用日期",
                  "is needed on every row when the file has several schedules",
                  "", ""),
    "bad_weeks": ("“%(value)s”不是 每周、单周 或 双周", "%(value)r is not all, odd or even", "", ""),
    "slot_taken": ("%(klass)s 星期%(wd)s 第%(period)s节 已在第 %(line)s 行",
                   "%(klass)s weekday %(wd)s period %(period)s is already on line %(line)s", "", ""),
    "slot_kept": ("%(klass)s 星期%(wd)s 第%(period)s节 与已有的每周课冲突",
                  "%(klass)s weekday %(wd)s period %(period)s clashes with the stored every-week lesson",
                  "导入这个班的完整课表，或用“替换全部”", "import the class's whole timetable, or use --replace"),
    "group_differs": ("%(teacher)s 的教研组在第 %(line)s 行是“%(other)s”，这里是“%(value)s”",
                      "%(teacher)s is in group %(other)r on line %(line)s but %(value)r here",
                      "一位教师只属于一个教研组", "a teacher belongs to one group"),
    "bad_cal_kind": ("“%(value)s”不是 放假、上课（调休）、考试、开学 或 学期结束",
                     "%(value)r is not one of holiday, workday, exam, term_start, term_end", "", ""),
    "follows_not_workday": ("只有上课日（调休）才按某个星期的课表上课", "only a workday follows a weekday's timetable",
                            "", ""),
    "follows_needed": ("周末调休上课要写按星期几（1-5）的课表", "a weekend workday must name the weekday (1-5) "
                       "whose timetable it follows", "", ""),
    "term_no_end": ("%(start)s 开始的学期没有学期结束", "the term starting %(start)s has no term_end", "", ""),
    "term_no_start": ("学期结束 %(date)s 之前没有开学", "term_end %(date)s has no term_start before it", "", ""),
    "bad_school": ("学校代码“%(school)s”无效", "school %(school)r must match %(pattern)s", "", ""),
    "unknown_school": ("没有学校“%(school)s”（已有：%(known)s）",
                       "no school %(school)r in the store (known: %(known)s)",
                       "检查拼写；要新建学校请加 --create-school（网页：勾选“新建学校”）",
                       "check the spelling; to add a new school use --create-school"),
    "unknown_kind": ("未知的导入类型“%(kind)s”", "unknown import kind %(kind)r; one of %(kinds)s", "", ""),
    "no_grid": ("没有找到课表：既没有列名行，也没有“星期一…星期五”表头的课表",
                "no timetable found: neither a header row nor a grid with 星期一…星期五 columns",
                "下载课表模板，或每个班一张表：行为第1节…第8节，列为星期一…星期五",
                "download the template, or one grid per class: rows 第1节…, columns 星期一…"),
    "grid_no_name": ("看不出这张课表属于哪个班或哪位教师", "cannot tell which class or teacher this grid belongs to",
                     "把工作表命名为班级（如“三(2)班”），或在表格上方写“三(2)班课程表”",
                     "name the sheet after the class, or put e.g. 三(2)班课程表 above the grid"),
    "grid_cell": ("看不懂“%(value)s”", "cannot read %(value)r",
                  "写成“科目 %(other)s”，如“%(example)s”", "write \"subject %(other_en)s\", e.g. %(example)s"),
    # warnings: the file is imported, the user is told
    "w_period_not_in_bell": ("第 %(period)s 节不在作息时间表里：这节课不会计入使用率",
                             "period %(period)s is not in the bell schedule: the lesson is not counted", "", ""),
    "w_no_teacher": ("“%(value)s”没有教师，未导入", "%(value)r names no teacher: not imported", "", ""),
    "w_class_not_in_timetable": ("班级“%(klass)s”不在课表里", "class %(klass)s is not in the timetable",
                                 "检查班级名称是否与课表一致", "check that the class is spelled as in the timetable"),
    "w_teacher_no_account": ("教师“%(teacher)s”没有账号，登录后看不到自己的课",
                             "teacher %(teacher)s has no dashboard account (a teacher's user name is their name "
                             "in the timetable)", "检查姓名是否与账号一致，或添加该教师的账号",
                             "check the spelling, or add the teacher's account"),
    "w_teacher_not_in_timetable": ("教师“%(teacher)s”不在课表里", "teacher %(teacher)s is not in the timetable",
                                   "", ""),
}

_COLUMN = {"zh": "“%s”列", "en": "column %s"}


@dataclass
class Msg:
    key: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "en") -> str:
        zh, en, _hz, _he = MESSAGES[self.key]
        return (zh if lang == "zh" else en) % self.params

    def hint(self, lang: str = "en") -> str:
        _zh, _en, hz, he = MESSAGES[self.key]
        return (hz if lang == "zh" else he) % self.params


def msg(key: str, **params: Any) -> Msg:
    if key not in MESSAGES:
        raise KeyError(key)
    return Msg(key, params)


@dataclass
class Where:
    file: str = ""
    line: int | None = None
    column: str | None = None  # canonical column name
    sheet: str | None = None
    cell: str | None = None  # e.g. C4 in a grid

    def render(self, lang: str) -> str:
        from collector.school.import_columns import label

        parts = []
        if self.sheet:
            parts.append(f"工作表“{self.sheet}”" if lang == "zh" else f"sheet {self.sheet}")
        if self.cell:
            parts.append(f"单元格 {self.cell}" if lang == "zh" else f"cell {self.cell}")
        elif self.line is not None:
            parts.append(f"第 {self.line} 行" if lang == "zh" else f"line {self.line}")
        if self.column:
            parts.append(_COLUMN[lang if lang == "zh" else "en"] % label(self.column, lang))
        return ("，" if lang == "zh" else ", ").join(parts)


def render(where: Where, m: Msg, lang: str) -> str:
    loc = where.render(lang)
    sep = "：" if lang == "zh" else ": "
    head = sep.join(x for x in (where.file, loc) if x)
    text = m.text(lang)
    out = f"{head}{sep}{text}" if head else text
    hint = m.hint(lang)
    if hint:
        out += f"（提示：{hint}）" if lang == "zh" else f" (hint: {hint})"
    return out


class ImportError_(BbtError, ValueError):
    """A bad file or row; it names file, line and column. Nothing was applied."""

    def __init__(self, message: Msg | str, file: str = "", line: int | None = None, column: str | None = None,
                 sheet: str | None = None, cell: str | None = None) -> None:
        self.msg = message if isinstance(message, Msg) else None
        self.plain = message if isinstance(message, str) else None
        self.where = Where(file, line, column, sheet, cell)
        super().__init__(self.render("en"))

    def render(self, lang: str = "en") -> str:
        if self.msg is None:  # an English-only message from an older caller
            head = ": ".join(x for x in (self.where.file, self.where.render("en")) if x)
            return f"{head}: {self.plain}" if head else str(self.plain)
        return render(self.where, self.msg, lang)


@dataclass
class Warning_:
    """Something the school should know; the import still applies."""
    where: Where
    msg: Msg

    def render(self, lang: str = "en") -> str:
        return render(self.where, self.msg, lang)
