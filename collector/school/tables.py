"""A school's table: rows of canonical columns, each with where it came from (line, sheet, cell).

The header row is the first row, among the first ten non-empty rows of the first non-empty sheet,
that names every required column (Chinese or English names, collector.school.import_columns); rows above
it (a title such as "2026秋季学期作息时间表") are skipped. Rows come back with their line number so
that every error can name file, line and column.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from collector.school.import_columns import canonical, label
from collector.school.import_errors import ImportError_, Msg, msg
from collector.school.readers import Book, Sheet, read_book

__all__ = ["ImportError_", "Row", "Table", "col_error", "read_table", "table_from_sheet"]
HEADER_SEARCH = 10


@dataclass
class Row:
    line: int
    values: dict[str, str]
    sheet: str | None = None
    cell: str | None = None  # a grid's cell, e.g. C4


@dataclass
class Table:
    name: str  # the user's file name
    rows: list[Row]
    book: Book | None = None


def read_table(path: str | Path, required: tuple[str, ...], optional: tuple[str, ...] = (),
               display_name: str | None = None) -> list[Row]:
    return table_of(read_book(path, display_name), required, optional).rows


def table_of(book: Book, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> Table:
    sheet = next((s for s in book.sheets if any(any(c for c in r) for r in s.rows)), None)
    if sheet is None:
        raise ImportError_(msg("empty"), file=book.name)
    rows = table_from_sheet(book.name, sheet, required, optional, sheet_named=len(book.sheets) > 1)
    return Table(book.name, rows, book)


def _header_at(sheet: Sheet, required: tuple[str, ...]) -> int:
    seen = 0
    first = None
    for i, r in enumerate(sheet.rows):
        if not any(r):
            continue
        first = i if first is None else first
        names = {canonical(c) for c in r}
        if all(c in names for c in required):
            return i
        seen += 1
        if seen >= HEADER_SEARCH:
            break
    return first if first is not None else 0


def table_from_sheet(name: str, sheet: Sheet, required: tuple[str, ...], optional: tuple[str, ...] = (),
                     sheet_named: bool = False) -> list[Row]:
    at = _header_at(sheet, required)
    raw = sheet.rows[at] if sheet.rows else []
    sheet_name = sheet.title if sheet_named else None
    expected = ", ".join(label(c, "en") for c in required + optional)
    header = [canonical(c) for c in raw]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportError_(msg("missing_columns", columns=", ".join(missing), expected=expected),
                           file=name, line=at + 1, sheet=sheet_name)
    unknown = [c for c, h in zip(raw, header, strict=True) if h is None or (h and h not in required + optional)]
    if unknown:
        raise ImportError_(msg("unknown_columns", columns=", ".join(unknown), expected=expected),
                           file=name, line=at + 1, sheet=sheet_name)
    twice = [c for i, (c, h) in enumerate(zip(raw, header, strict=True)) if h and h in header[:i]]
    if twice:
        raise ImportError_(msg("repeated_column", column=twice[0]), file=name, line=at + 1, sheet=sheet_name)
    rows = []
    for i, cells in enumerate(sheet.rows[at + 1:], start=at + 2):
        if not any(cells):
            continue
        if len(cells) > len(header) and any(cells[len(header):]):
            raise ImportError_(msg("extra_cells"), file=name, line=i, sheet=sheet_name)
        values = {h: (cells[j] if j < len(cells) else "") for j, h in enumerate(header) if h}
        rows.append(Row(i, values, sheet_name))
    return rows


def col_error(p: str | Path, row: Row, column: str, message: str | Msg) -> ImportError_:
    """The error of one cell. ``p`` is the user's file name (or a path: its name is used)."""
    return ImportError_(message, file=Path(p).name, line=row.line, column=column, sheet=row.sheet, cell=row.cell)
