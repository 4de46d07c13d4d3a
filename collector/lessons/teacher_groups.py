"""How the usage pages group their rows: a class's grade (年级) from its name, and a teacher's grade
(where most of their lessons are) and 教研组 (the timetable's optional ``group`` column).

Pure functions first (grade_of, grade_rank, majority); the two readers at the end query the store.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from collector.db import Database

DIGITS = "〇一二三四五六七八九"
GRADE_ORDER = ["一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "七年级", "八年级", "九年级",
               "初一", "初二", "初三", "高一", "高二", "高三"]
_NUM = r"[一二三四五六七八九十\d]{1,2}"


def _chinese(num: str) -> str:
    """'3' -> '三', '十' stays; a number as the grade names write it."""
    if num.isdigit():
        n = int(num)
        return DIGITS[n] if n < 10 else "十" + (DIGITS[n - 10] if n > 10 else "")
    return num


def grade_of(klass: str | None) -> str | None:
    """The grade in a class name, or None when the name does not say:
    七年级1班 -> 七年级, 7年级2班 -> 七年级, 三(2)班 / 三年级2班 / 3(2)班 -> 三年级, 初一3班 -> 初一,
    高一(3)班 -> 高一, 2023级1班 -> 2023级."""
    name = re.sub(r"\s+", "", (klass or "")).replace("（", "(").replace("）", ")")
    if not name:
        return None
    m = re.match(rf"({_NUM})年级", name)
    if m:
        return _chinese(m[1]) + "年级"
    m = re.match(r"([初高])([一二三123])", name)
    if m:
        return m[1] + _chinese(m[2])
    m = re.match(r"((?:19|20)\d\d)级", name)
    if m:
        return m[1] + "级"
    m = re.match(rf"({_NUM})(?:\(\d+\)|\.\d+|-\d+)班?$", name)
    if m:
        return _chinese(m[1]) + "年级"
    return None


def grade_rank(grade: str | None) -> tuple[int, str]:
    """Order of grades: 一年级 … 九年级, 初一 … 高三, then others by name; no grade last."""
    if grade is None:
        return (2, "")
    if grade in GRADE_ORDER:
        return (0, f"{GRADE_ORDER.index(grade):02d}")
    return (1, grade)


def majority(values: Iterable[str | None]) -> str | None:
    """The most frequent non-empty value (ties: the first in grade order, then by name)."""
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    return min(counts, key=lambda v: (-counts[v], grade_rank(v), v))


def teacher_grades(db: Database, school: str) -> dict[str, str | None]:
    """Each timetabled teacher's grade: the grade of most of their weekly lessons."""
    lessons: dict[str, list[str | None]] = {}
    for r in db.query("SELECT teacher, class FROM timetable WHERE school = ?", (school,)):
        lessons.setdefault(r["teacher"], []).append(grade_of(r["class"]))
    return {t: majority(gs) for t, gs in lessons.items()}


def teacher_groups(db: Database, school: str) -> dict[str, str]:
    """Each teacher's 教研组 from the timetable's group column (the most frequent one if rows differ)."""
    groups: dict[str, list[str | None]] = {}
    for r in db.query("SELECT teacher, teacher_group FROM timetable WHERE school = ? AND teacher_group IS NOT NULL",
                      (school,)):
        groups.setdefault(r["teacher"], []).append(r["teacher_group"])
    return {t: g for t, gs in groups.items() if (g := majority(gs))}
