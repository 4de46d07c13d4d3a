"""A school of 12 classes and 72 teachers (more than a page of the rates table) for the usage page
tests: each teacher has one lesson a day in week 2026-W47 and uses the PC on (index % 6) of them."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from collector.school.imports import run_import
from tests.usage_script import DeviceScript, ingest

S = "big"
WEEK = "2026-W47"
DAYS = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
CLASSES = [f"七年级{i}班" for i in range(1, 5)] + [f"八年级{i}班" for i in range(1, 5)] + \
    [f"高一({i})班" for i in range(1, 5)]
BELL = [("08:00", "08:40"), ("08:50", "09:30"), ("10:00", "10:40"), ("10:50", "11:30"), ("14:00", "14:40"),
        ("14:50", "15:30")]
GROUPS = ["语文组", "数学组", "英语组", "理化组", "史地组", "艺体组"]


def teacher(c: int, p: int) -> str:
    return f"教师{c * 6 + p + 1:02d}"


def used_days(c: int, p: int) -> int:
    """How many of the teacher's five lessons use the PC: 0 .. 5 (rate 0 % .. 100 %)."""
    return (c * 6 + p) % 6


def seed(db: Any, tmp: Path) -> None:
    def write(name: str, text: str) -> Path:
        (tmp / name).write_text(text, encoding="utf-8")
        return tmp / name
    run_import(db, "devices", S, write("d.csv", "device,class\n" + "".join(
        f"pc{c},{k}\n" for c, k in enumerate(CLASSES))))
    run_import(db, "bell", S, write("b.csv", "period,start,end\n" + "".join(
        f"{p + 1},{a},{b}\n" for p, (a, b) in enumerate(BELL))))
    rows = ["班级,星期,节次,教师,科目,教研组"]
    for c, k in enumerate(CLASSES):
        for wd in range(1, 6):
            rows += [f"{k},{wd},{p + 1},{teacher(c, p)},{GROUPS[p][:2]},{GROUPS[p] if c % 4 else ''}"
                     for p in range(6)]
    run_import(db, "timetable", S, write("t.csv", "\n".join(rows) + "\n"))
    scripts = []
    for c in range(len(CLASSES)):
        dev = DeviceScript(f"pc{c}")
        for i, day in enumerate(DAYS):
            dev.power_on(day, "07:50").heartbeats(day, "07:55", "15:35", every_min=10)
            for p, (a, _b) in enumerate(BELL):
                if i < used_days(c, p):
                    dev.session(day, a, (datetime.strptime(a, "%H:%M") + timedelta(minutes=20)).strftime("%H:%M"))
            dev.power_off(day, "15:40")
        scripts.append(dev)
    assert ingest(db, S, scripts) > 1000
