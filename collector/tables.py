"""Reading a school's spreadsheet: CSV (UTF-8, BOM allowed) or the first sheet of an .xlsx.

Rows come back with their line number so that every error can name file, line and column.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bbt.errors import BbtError


class ImportError_(BbtError, ValueError):
    """A bad file or row; the message names file, line and column. Nothing was applied."""


@dataclass
class Row:
    line: int
    values: dict[str, str]


def read_table(path: str | Path, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> list[Row]:
    p = Path(path)
    if not p.exists():
        raise ImportError_(f"{p}: no such file")
    if p.suffix.lower() in (".xlsx", ".xlsm"):
        header, body = _read_xlsx(p)
    else:
        header, body = _read_csv(p)
    header = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportError_(f"{p.name}: line 1: missing column(s) {', '.join(missing)} "
                           f"(expected {', '.join(required + optional)})")
    unknown = [h for h in header if h and h not in required + optional]
    if unknown:
        raise ImportError_(f"{p.name}: line 1: unknown column(s) {', '.join(unknown)} "
                           f"(expected {', '.join(required + optional)})")
    rows = []
    for line, cells in body:
        if not any(str(c).strip() for c in cells):
            continue
        if len(cells) > len(header) and any(str(c).strip() for c in cells[len(header):]):
            raise ImportError_(f"{p.name}: line {line}: more cells than columns")
        values = {h: str(cells[i]).strip() if i < len(cells) else "" for i, h in enumerate(header) if h}
        rows.append(Row(line, values))
    return rows


def _read_csv(p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ImportError_(f"{p.name}: not UTF-8 text (byte {e.start}); save the file as CSV UTF-8") from None
    reader = csv.reader(io.StringIO(text))
    try:
        all_rows = list(reader)
    except csv.Error as e:
        raise ImportError_(f"{p.name}: line {reader.line_num}: {e}") from None
    if not all_rows:
        raise ImportError_(f"{p.name}: the file is empty")
    return all_rows[0], [(i + 2, r) for i, r in enumerate(all_rows[1:])]


def _read_xlsx(p: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(p, read_only=True, data_only=True)
    except Exception as e:
        raise ImportError_(f"{p.name}: not a readable .xlsx file ({e})") from None
    ws = wb.worksheets[0]
    rows: list[list[str]] = [[_cell(c) for c in r] for r in ws.iter_rows(values_only=True)]
    wb.close()
    if not rows:
        raise ImportError_(f"{p.name}: the first sheet is empty")
    return rows[0], [(i + 2, r) for i, r in enumerate(rows[1:])]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        if hasattr(value, "hour") and not hasattr(value, "year"):
            return str(value.strftime("%H:%M"))
        if hasattr(value, "hour") and (value.hour or value.minute) and value.year == 1899:
            return str(value.strftime("%H:%M"))
        return str(value.strftime("%Y-%m-%d"))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def col_error(p: str | Path, row: Row, column: str, message: str) -> ImportError_:
    return ImportError_(f"{Path(p).name}: line {row.line}, column {column}: {message}")
