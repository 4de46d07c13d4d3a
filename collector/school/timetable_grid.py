"""Timetables as 排课 software prints them: grids with 第1节…第8节 down and 星期一…星期五 across.

Two shapes, any number of grids per sheet and per file:
- a class's grid (班级课表): cells "语文 张三" or "语文\\n张三" (subject, teacher);
- a teacher's grid (教师课表, the 总课表 by teacher): cells "语文 三(2)班" (subject, class).

Whose grid it is comes from a title cell above the grid ("三(2)班课程表", "教师：张三",
"张三老师课表"), else from the sheet's name; a grid whose title does not say class or teacher is a
teacher's when its cells name classes (…班). Merged cells were filled by collector.school.readers, so a
double lesson merged over two rows is a lesson in both periods. Rows whose label is not a period
(午休, 课间操) are skipped. A wide 总课表 (one row per teacher or per class, 星期一 merged over its
periods 1…8 in two header rows) is read too. The result is the rows of the flat timetable
(class, weekday, period, teacher, subject), each with its sheet and cell.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from collector.school.import_errors import ImportError_, Warning_, Where, msg
from collector.school.import_values import parse_period, parse_weekday
from collector.school.readers import Book, Sheet, column_letter
from collector.school.tables import Row

GENERIC_TITLE = re.compile(r"^(sheet|工作表|表)\s*\d*$", re.IGNORECASE)
CLASS_LIKE = re.compile(r"(班|级)$|^\S*\d+\s*\(\s*\d+\s*\)\S*$")
TITLE_NOISE = re.compile(r"(总课表|课程表|课表|作息表|的|:|：)")
SPLIT = re.compile(r"[\s/／、]+")


def _header_columns(row: list[str]) -> dict[int, int] | None:
    """column index -> weekday, when the row is a grid's 星期一…星期五 header (at least three days)."""
    cols: dict[int, int] = {}
    for i, c in enumerate(row):
        if c and not c.isdigit():
            wd = parse_weekday(c)
            if wd is not None and wd not in cols.values():
                cols[i] = wd
    return cols if len(cols) >= 3 else None


def _name_of(text: str) -> tuple[str, str | None]:
    """(name, "class" / "teacher" / None) from a title such as 三(2)班课程表, 教师：张三, 张三老师课表."""
    role = "teacher" if re.search(r"教师|老师", text) else None
    t = re.sub(r"(任课教师|教师|老师|班级)\s*(?=[:：])|老师(?=的?(总课表|课程表|课表))", "", text)
    words = TITLE_NOISE.sub(" ", t).split()
    name = words[-1] if words else ""
    if role is None and CLASS_LIKE.search(name):
        role = "class"
    return name, role


def _titles(sheet: Sheet, top: int, header: int) -> list[str]:
    out: list[str] = []
    for r in reversed(sheet.rows[top:header]):
        out.extend(c for c in r if c and c not in out)
    return out


def _owner(name: str, sheet: Sheet, top: int, header: int, cells: list[str]) -> tuple[str, str]:
    candidates = _titles(sheet, top, header)
    if not GENERIC_TITLE.match(sheet.title):
        candidates.append(sheet.title)
    found = [_name_of(t) for t in candidates]
    named = [(n, role) for n, role in found if n and role]
    if named:
        return named[0]
    guess = [n for n, _role in found if n]
    if not guess:
        raise ImportError_(msg("grid_no_name"), file=name, sheet=sheet.title, line=header + 1)
    parts = [SPLIT.split(c) for c in cells if c]
    classy = sum(1 for p in parts if any(CLASS_LIKE.search(x) for x in p[1:]))
    return guess[0], ("teacher" if parts and classy * 2 >= len(parts) else "class")


def _lesson(cell: str, role: str) -> tuple[str, str] | None:
    """(subject, other) from a cell: the teacher in a class's grid, the class in a teacher's grid."""
    parts = [p for p in SPLIT.split(cell) if p]
    if len(parts) == 1:
        m = re.fullmatch(r"(.+?)\((.+)\)", parts[0])
        if role == "class" and m:
            return m.group(1), m.group(2)
        return None
    if role == "teacher":
        cls = next((p for p in parts if CLASS_LIKE.search(p)), parts[1])
        subject = next(p for p in parts if p != cls)
        return subject, cls
    return parts[0], parts[1]


def _wide_columns(sheet: Sheet, i: int) -> dict[int, tuple[int, int]] | None:
    """column -> (weekday, period) when rows i and i+1 head a wide 总课表: 星期一 (merged) over 1…8."""
    if i + 1 >= len(sheet.rows):
        return None
    top, sub = sheet.rows[i], sheet.rows[i + 1]
    cols = {}
    for c, v in enumerate(top):
        wd = parse_weekday(v) if v and not v.isdigit() else None
        p = parse_period(sub[c]) if wd is not None and c < len(sub) else None
        if wd is not None and p is not None:
            cols[c] = (wd, p)
    days = {wd for wd, _p in cols.values()}
    return cols if len(days) >= 3 and len(cols) > len(days) else None


def _blocks(sheet: Sheet) -> list[tuple[int, dict[int, int] | dict[int, tuple[int, int]]]]:
    out: list[tuple[int, dict[int, int] | dict[int, tuple[int, int]]]] = []
    for i, r in enumerate(sheet.rows):
        if out and out[-1][0] == i - 1 and isinstance(next(iter(out[-1][1].values())), tuple):
            continue  # the period row of a wide header
        cols = _wide_columns(sheet, i) or _header_columns(r)
        if cols:
            out.append((i, cols))
    return out


@dataclass
class _Out:
    name: str
    sheet: Sheet
    rows: list[Row] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)

    def lesson(self, i: int, c: int, owner: str, role: str, wd: int, period: int) -> None:
        """The lesson in cell (row i, column c) of ``owner``'s grid (a class's or a teacher's)."""
        r = self.sheet.rows[i]
        value = r[c] if c < len(r) else ""
        if not value:
            return
        ref = f"{column_letter(c)}{i + 1}"
        got = _lesson(value, role)
        if got is None:
            if role == "class":
                self.warnings.append(Warning_(Where(self.name, i + 1, sheet=self.sheet.title, cell=ref),
                                              msg("w_no_teacher", value=value)))
                return
            raise ImportError_(msg("grid_cell", value=value, other="班级", other_en="class", example="语文 三(2)班"),
                               file=self.name, line=i + 1, sheet=self.sheet.title, cell=ref)
        subject, who = got
        values = {"class": owner if role == "class" else who, "teacher": owner if role == "teacher" else who,
                  "subject": subject, "weekday": str(wd), "period": str(period)}
        self.rows.append(Row(i + 1, values, self.sheet.title, ref))


def grid_rows(book: Book) -> tuple[list[Row], list[Warning_]]:
    rows: list[Row] = []
    warnings: list[Warning_] = []
    for sheet in book.sheets:
        out = _Out(book.name, sheet, rows, warnings)
        blocks = _blocks(sheet)
        for n, (h, cols) in enumerate(blocks):
            end = blocks[n + 1][0] if n + 1 < len(blocks) else len(sheet.rows)
            top = blocks[n - 1][0] + 1 if n else 0
            if isinstance(next(iter(cols.values())), tuple):
                _wide(out, h, end, cols)  # type: ignore[arg-type]
            else:
                _grid(out, top, h, end, cols)  # type: ignore[arg-type]
    return rows, warnings


def _grid(out: _Out, top: int, h: int, end: int, cols: dict[int, int]) -> None:
    """A class's or a teacher's grid: periods down, weekdays across."""
    sheet = out.sheet
    first = min(cols)
    body: list[tuple[int, int, list[str]]] = []  # (row index, period, cells)
    for i in range(h + 1, end):
        r = sheet.rows[i]
        label = next((p for c in r[:first] if (p := parse_period(c)) is not None), None)
        if label is not None:
            body.append((i, label, r))
    cells = [r[c] for _i, _p, r in body for c in cols if c < len(r)]
    owner, role = _owner(out.name, sheet, top, h, cells)
    for i, period, _r in body:
        for c, wd in cols.items():
            out.lesson(i, c, owner, role, wd, period)


def _wide(out: _Out, h: int, end: int, cols: dict[int, tuple[int, int]]) -> None:
    """A wide 总课表: one row per teacher (or class), columns 星期一 第1节 … 星期五 第8节."""
    first = min(cols)
    for i in range(h + 2, end):
        r = out.sheet.rows[i]
        owner = next((c for c in r[:first] if c and parse_period(c) is None), "")
        if not owner:
            continue
        role = "class" if CLASS_LIKE.search(owner) else "teacher"
        for c, (wd, period) in cols.items():
            out.lesson(i, c, owner, role, wd, period)
