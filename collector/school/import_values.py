"""Cell values as schools write them: 星期一 / 周一 / 一 / 1 / Monday; 第3节 / 3 / 三; 8:00; 2026/9/1.

The parse_* functions are pure (None when the text is not one); the checked ones raise the
import error of the row's cell.
"""
from __future__ import annotations

import re
from datetime import date
from typing import Any, Callable, TypeVar

from collector.school.import_errors import msg
from collector.school.readers import halfwidth
from collector.school.tables import Row, col_error

T = TypeVar("T")

CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
             "九": 9}
WEEKDAY_NAMES = {"mon": 1, "monday": 1, "tue": 2, "tues": 2, "tuesday": 2, "wed": 3, "wednesday": 3, "thu": 4,
                 "thur": 4, "thurs": 4, "thursday": 4, "fri": 5, "friday": 5, "sat": 6, "saturday": 6, "sun": 7,
                 "sunday": 7, "日": 7, "天": 7}
HHMM = re.compile(r"^(\d{1,2})[:：.](\d{2})(:\d{2})?$")


def cn_number(s: str) -> int | None:
    """一..九十九 (十, 十二, 二十, 二十三) or ASCII digits -> int."""
    s = s.strip()
    if s.isdigit():
        return int(s)
    if not s or any(c not in CN_DIGITS and c != "十" for c in s):
        return None
    if "十" not in s:
        return CN_DIGITS[s] if len(s) == 1 else None
    tens, _, ones = s.partition("十")
    if "十" in ones or len(tens) > 1 or len(ones) > 1:
        return None
    return (CN_DIGITS[tens] if tens else 1) * 10 + (CN_DIGITS[ones] if ones else 0)


def parse_weekday(text: str) -> int | None:
    s = halfwidth(text).strip().lower().rstrip(".")
    for prefix in ("星期", "礼拜", "周"):
        if s.startswith(prefix):
            s = s[len(prefix):].strip()
            break
    if s in WEEKDAY_NAMES:
        return WEEKDAY_NAMES[s]
    n = cn_number(s)
    return n if n is not None and 1 <= n <= 7 else None


def parse_period(text: str) -> int | None:
    s = re.sub(r"\s", "", halfwidth(text))
    m = re.fullmatch(r"第?([0-9一二三四五六七八九十]+)(节|节课)?", s)
    if not m:
        return None
    n = cn_number(m.group(1))
    return n if n is not None and n >= 1 else None


def parse_minutes(text: str) -> int | None:
    m = HHMM.match(halfwidth(text).strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    return int(m.group(1)) * 60 + int(m.group(2))


def parse_date(text: str) -> str | None:
    s = halfwidth(text).strip()
    if len(s) > 10 and s[10] in " T":
        s = s[:10]
    m = re.fullmatch(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?", s)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3))).isoformat()
    except ValueError:
        return None


def text(name: Any, r: Row, col: str) -> str:
    v = r.values.get(col, "")
    if not v:
        raise col_error(name, r, col, msg("empty_value"))
    return v


def _parsed(name: Any, r: Row, col: str, parse: Callable[[str], T | None], code: str) -> T:
    """The cell parsed, or the row's error naming the column and the value (message ``code``)."""
    v = r.values.get(col, "")
    out = parse(v)
    if out is None:
        raise col_error(name, r, col, msg(code, value=v))
    return out


def weekday(name: Any, r: Row, col: str = "weekday") -> int:
    return _parsed(name, r, col, parse_weekday, "bad_weekday")


def period(name: Any, r: Row, col: str = "period") -> int:
    n = _parsed(name, r, col, parse_period, "bad_period")
    if n > 30:
        raise col_error(name, r, col, msg("out_of_range", value=n, lo=1, hi=30))
    return n


def minutes(name: Any, r: Row, col: str) -> int:
    return _parsed(name, r, col, parse_minutes, "bad_time")


def a_date(name: Any, r: Row, col: str) -> str:
    return _parsed(name, r, col, parse_date, "bad_date")
