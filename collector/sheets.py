"""Writing spreadsheets for people: the one owner of how every CSV and XLSX export is made safe and
readable (usage reports, the patrol record, the fault register).

* Formula injection (OWASP "CSV injection"): a text cell that begins with ``= + - @`` or a tab /
  CR / LF could be taken for a formula by Excel or WPS. In CSV such a cell is prefixed with a
  single quote; in XLSX it is written as a text cell (never a formula) with Excel's quote prefix,
  so that editing it keeps it text. Numbers stay numbers (a negative number is not text).
* CSV for Chinese Excel: UTF-8 with a BOM (a double-click opens it right), CRLF line ends.
* XLSX: frozen header rows, column widths from the content, A4 print set-up fitted to the page's
  width with the title and date in the page header and page numbers in the footer.
"""
from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

RISKY_START = ("=", "+", "-", "@", "\t", "\r", "\n")
BOM = "\ufeff"


def is_risky(value: Any) -> bool:
    """A text value that a spreadsheet could read as a formula."""
    return isinstance(value, str) and value.startswith(RISKY_START)


def csv_cell(value: Any) -> Any:
    """One CSV cell made safe: risky text gets a leading single quote; None is empty."""
    if value is None:
        return ""
    return "'" + value if is_risky(value) else value


def csv_text(header: Sequence[Any], rows: Iterable[Sequence[Any]], bom: bool = True) -> str:
    """A CSV document (BOM first unless ``bom`` is False) with every cell made safe."""
    out = io.StringIO()
    if bom:
        out.write(BOM)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([csv_cell(c) for c in header])
    for r in rows:
        w.writerow([csv_cell(c) for c in r])
    return out.getvalue()


def neutralize(wb: Any) -> int:
    """Turn every formula or risky text cell of every sheet into a text cell; returns how many.
    Our exports never write formulas, so any formula cell came from data (a name, an agent string)."""
    n = 0
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f" or is_risky(c.value):
                    c.value = str(c.value)
                    c.data_type = "s"
                    c.quotePrefix = True
                    n += 1
    return n


def workbook_bytes(wb: Any) -> bytes:
    """The workbook as .xlsx bytes, made safe first (every export saves through here or save())."""
    neutralize(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def save(wb: Any, path: str | Path) -> None:
    Path(path).write_bytes(workbook_bytes(wb))


def text_width(value: Any) -> int:
    """Display width of a value in character cells (a CJK character takes two)."""
    s = value if isinstance(value, str) else ("" if value is None else str(value))
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def fit_columns(ws: Any, first_row: int = 1, least: int = 8, most: int = 48) -> None:
    """Column widths from the widest value of each column (from ``first_row`` down, so that a long
    title above the table does not widen its first column)."""
    from openpyxl.utils import get_column_letter

    widths: dict[int, int] = {}
    for row in ws.iter_rows(min_row=first_row):
        for c in row:
            if c.value is not None:
                widths[c.column] = max(widths.get(c.column, 0), text_width(c.value))
    for col, w in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = max(least, min(most, w + 2))


def style_header(ws: Any, row: int) -> None:
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

    fill = PatternFill("solid", fgColor="DDE5F0")
    line = Side(style="thin", color="999999")
    for c in ws[row]:
        c.font = Font(bold=True)
        c.fill = fill
        c.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        c.border = Border(bottom=line)


def page_setup(ws: Any, title: str, date_text: str, header_rows: int = 0, landscape: bool = False) -> None:
    """A4, fitted to the page's width, ``header_rows`` repeated on every page, title and date in the
    page header, page numbers in the footer."""
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.5
    if header_rows:
        ws.print_title_rows = f"1:{header_rows}"
    ws.oddHeader.center.text = title.replace("&", "&&")
    ws.oddHeader.right.text = date_text
    ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def table_sheet(ws: Any, title: str, date_text: str, header: Sequence[str], rows: Iterable[Sequence[Any]],
                subtitle: str | None = None, landscape: bool = False, title_row: bool = True) -> int:
    """Fill ``ws`` with a table: title (and subtitle) rows unless ``title_row`` is False (the title
    is in the printed page's header anyway), a styled header frozen with them, the rows, widths and
    print set-up. Returns the header's row number."""
    from openpyxl.styles import Font

    if title_row:
        ws.append([title])
        ws.cell(1, 1).font = Font(bold=True, size=14)
        if subtitle:
            ws.append([subtitle])
    ws.append(list(header))
    head = ws.max_row
    style_header(ws, head)
    for r in rows:
        ws.append(list(r))
    ws.freeze_panes = ws.cell(head + 1, 1).coordinate
    if ws.max_row > head:
        ws.auto_filter.ref = f"A{head}:{ws.cell(ws.max_row, len(header)).coordinate}"
    fit_columns(ws, head)
    page_setup(ws, title, date_text, head, landscape)
    return head
