"""Reading a school's file into sheets of text cells: CSV (UTF-8 with or without BOM, GBK, GB18030;
tab-separated UTF-16 as Excel saves "Unicode 文本"), .xlsx/.xlsm (openpyxl) and .xls (xlrd).

Every sheet is a list of rows of stripped strings (row 1 is index 0, so an error can name the line
the user sees in Excel), with merged cells filled: every cell of a merged range holds the range's
value (a double lesson merged over two rows reads as two lessons). Full-width digits, letters and
spaces (ＡＢ１２、全角空格) are turned into their ASCII forms.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterable

from collector.school.import_errors import ImportError_, msg

XLSX = (".xlsx", ".xlsm")
XLS = (".xls",)
SUFFIXES = (".csv", ".txt", *XLSX, *XLS)

ENCODING_NOTE = {
    "utf-8-sig": ("UTF-8（带 BOM）", "UTF-8 (with BOM)"),
    "utf-8": ("UTF-8", "UTF-8"),
    "gbk": ("GBK（Excel 中文版的 CSV）", "GBK (CSV from Chinese Excel)"),
    "gb18030": ("GB18030", "GB18030"),
    "utf-16": ("UTF-16（Excel 的“Unicode 文本”）", "UTF-16 (Excel's \"Unicode Text\")"),
}
_FULL = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)}
_FULL[0x3000] = 0x20  # ideographic space


@dataclass
class Sheet:
    title: str
    rows: list[list[str]]


@dataclass
class Book:
    name: str  # the user's file name, for messages
    sheets: list[Sheet]
    encoding: str | None = None  # CSV only: key of ENCODING_NOTE
    notes: list[str] = field(default_factory=list)


def halfwidth(s: str) -> str:
    return s.translate(_FULL)


def clean(value: Any) -> str:
    """One cell as text: times HH:MM, dates YYYY-MM-DD, whole floats without .0, half-width, stripped."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.year <= 1900 and (value.hour or value.minute):
            return value.strftime("%H:%M")
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return halfwidth(str(value)).replace("\r\n", "\n").strip()


def read_book(path: str | Path, display_name: str | None = None) -> Book:
    p = Path(path)
    name = display_name or p.name
    if not p.exists():
        raise ImportError_(msg("no_file"), file=name)
    suffix = Path(name).suffix.lower() or p.suffix.lower()
    if suffix in XLSX:
        return Book(name, _read_xlsx(p, name))
    if suffix in XLS:
        return Book(name, _read_xls(p, name))
    data = p.read_bytes()
    if data[:4] == b"PK\x03\x04":
        return Book(name, _read_xlsx(p, name))
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return Book(name, _read_xls(p, name))
    text, enc = decode(data, name)
    return Book(name, [Sheet(Path(name).stem, _csv_rows(text, name))], enc)


def decode(data: bytes, name: str) -> tuple[str, str]:
    """The text and its encoding: UTF-16 with its BOM, UTF-8 (BOM or not), then GBK, then GB18030."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    for enc in ("gbk", "gb18030"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise ImportError_(msg("bad_encoding"), file=name)


def _csv_rows(text: str, name: str) -> list[list[str]]:
    first = text.split("\n", 1)[0]
    delim = "\t" if "\t" in first and "," not in first else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    try:
        return [[clean(c) for c in r] for r in reader]
    except csv.Error as e:
        raise ImportError_(msg("bad_csv", detail=str(e)), file=name, line=reader.line_num) from None


def _fill(rows: list[list[str]], ranges: Iterable[tuple[int, int, int, int]]) -> list[list[str]]:
    """Fill merged ranges (0-based rows r1..r2, columns c1..c2 inclusive) with their top-left value."""
    for r1, r2, c1, c2 in ranges:
        if r1 >= len(rows):
            continue
        top = rows[r1]
        value = top[c1] if c1 < len(top) else ""
        for r in range(r1, min(r2, len(rows) - 1) + 1):
            row = rows[r]
            if len(row) <= c2:
                row.extend([""] * (c2 + 1 - len(row)))
            for c in range(c1, c2 + 1):
                row[c] = value
    return rows


def _read_xlsx(p: Path, name: str) -> list[Sheet]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(p, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged or foreign file
        raise ImportError_(msg("bad_xlsx", detail=type(e).__name__), file=name) from None
    sheets = []
    for ws in wb.worksheets:
        rows = [[clean(v) for v in r] for r in ws.iter_rows(values_only=True)]
        ranges = [(m.min_row - 1, m.max_row - 1, m.min_col - 1, m.max_col - 1) for m in ws.merged_cells.ranges]
        sheets.append(Sheet(halfwidth(ws.title).strip(), _fill(rows, ranges)))
    wb.close()
    return sheets


def _read_xls(p: Path, name: str) -> list[Sheet]:
    import xlrd

    try:
        wb = xlrd.open_workbook(str(p), formatting_info=True)
    except Exception as e:  # xlrd raises XLRDError, CompDocError, struct errors...
        raise ImportError_(msg("bad_xls", detail=type(e).__name__), file=name) from None
    sheets = []
    for ws in wb.sheets():
        rows = [[_xls_cell(ws.cell(r, c), wb.datemode) for c in range(ws.ncols)] for r in range(ws.nrows)]
        ranges = [(r1, r2 - 1, c1, c2 - 1) for r1, r2, c1, c2 in ws.merged_cells]
        sheets.append(Sheet(halfwidth(ws.name).strip(), _fill(rows, ranges)))
    return sheets


def _xls_cell(cell: Any, datemode: int) -> str:
    import xlrd

    if cell.ctype == xlrd.XL_CELL_DATE:
        y, mo, d, h, mi, s = xlrd.xldate_as_tuple(cell.value, datemode)
        if y == 0:
            return clean(time(h, mi, s))
        return clean(datetime(y, mo, d, h, mi, s))
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return ""
    return clean(cell.value)


def column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 26 -> AA)."""
    s = ""
    n = index + 1
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s
