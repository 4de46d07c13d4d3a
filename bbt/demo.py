"""The demo school (演示中学): 36 classrooms on two buildings × three floors, a bell schedule,
a week's timetable with named teachers, written as the CSV files a school would import."""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bbt.sim import Lesson

SCHOOL = "demo"
SCHOOL_NAME = "演示中学"
TZ = "Asia/Shanghai"
BELL = [(1, "08:00", "08:40"), (2, "08:50", "09:30"), (3, "09:50", "10:30"), (4, "10:40", "11:20"),
        (5, "14:00", "14:40"), (6, "14:50", "15:30"), (7, "15:40", "16:20"), (8, "16:30", "17:10")]
# subject: (lessons a week, classes one teacher takes)
SUBJECTS = {"语文": (6, 2), "数学": (6, 2), "英语": (5, 2), "物理": (3, 4), "化学": (2, 6), "生物": (2, 6),
            "历史": (2, 6), "地理": (2, 6), "道德与法治": (2, 6), "音乐": (1, 12), "美术": (1, 12),
            "信息技术": (1, 12), "班会": (1, 1)}
HOMEROOM = "班会"
# how often a teacher uses the classroom PC in a lesson: most do, some seldom (the school's rate ~70 %)
HABITS = (0.97, 0.93, 0.9, 0.87, 0.84, 0.8, 0.76, 0.72, 0.66, 0.5, 0.4)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰红梅建国志文斌颖琳晨雪"
GRADES = ["七年级", "八年级", "九年级"]


@dataclass
class DemoSchool:
    devices: list[dict[str, str]] = field(default_factory=list)
    timetable: list[dict[str, str]] = field(default_factory=list)
    use_prob: dict[str, float] = field(default_factory=dict)  # teacher -> how often they use the device

    @property
    def teachers(self) -> list[str]:
        return sorted(self.use_prob)

    def class_of(self, device: str) -> str:
        return next(d["class"] for d in self.devices if d["device"] == device)

    def lessons_for(self, device: str, day: date) -> list[Lesson]:
        tz = ZoneInfo(TZ)
        klass = self.class_of(device)
        bell = {p: (s, e) for p, s, e in BELL}
        out = []
        for row in self.timetable:
            if row["class"] != klass or int(row["weekday"]) != day.isoweekday():
                continue
            s, e = bell[int(row["period"])]
            start = datetime.combine(day, datetime.strptime(s, "%H:%M").time(), tz)
            end = datetime.combine(day, datetime.strptime(e, "%H:%M").time(), tz)
            out.append(Lesson(start, end, self.use_prob[row["teacher"]]))
        return out


def _names(rng: random.Random, n: int) -> list[str]:
    names: list[str] = []
    while len(names) < n:
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
        if name not in names:
            names.append(name)
    return names


def build(seed: int = 7) -> DemoSchool:
    rng = random.Random(seed)
    school = DemoSchool()
    classes = []
    for b, building in enumerate(("A楼", "B楼")):
        for floor in (1, 2, 3):
            grade = GRADES[floor - 1]
            for r in range(1, 7):
                n = b * 6 + r
                klass = f"{grade}{n}班"
                classes.append(klass)
                school.devices.append({"device": f"pc-{'AB'[b]}{floor}{r:02d}", "class": klass,
                                       "room": f"{'AB'[b]}{floor}{r:02d}", "building": building,
                                       "floor": f"{floor}楼"})
    names = iter(_names(rng, 200))
    teacher_of: dict[tuple[str, str], str] = {}
    for subject, (_, per_teacher) in SUBJECTS.items():
        if subject == HOMEROOM:
            continue
        for grade in GRADES:
            grade_classes = [c for c in classes if c.startswith(grade)]
            for i in range(0, len(grade_classes), per_teacher):
                t = next(names)
                school.use_prob[t] = rng.choice(HABITS)
                for c in grade_classes[i:i + per_teacher]:
                    teacher_of[(c, subject)] = t
    for i, c in enumerate(classes):  # the 班主任 (one of the class's 语文 / 数学 teachers) takes its 班会
        teacher_of[(c, HOMEROOM)] = teacher_of[(c, "语文" if i % 2 == 0 else "数学")]
    for c in classes:
        slots = [(wd, p) for wd in range(1, 6) for p in range(1, 9)]
        rng.shuffle(slots)
        it = iter(slots)
        for subject, (count, _) in SUBJECTS.items():
            for _ in range(count):
                wd, p = next(it)
                school.timetable.append({"class": c, "weekday": str(wd), "period": str(p),
                                         "teacher": teacher_of[(c, subject)], "subject": subject})
    school.timetable.sort(key=lambda r: (r["class"], int(r["weekday"]), int(r["period"])))
    return school


def write_csvs(school: DemoSchool, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[list[str], list[dict[str, Any]]]] = {
        "devices": (["device", "class", "room", "building", "floor"], school.devices),
        "bell": (["period", "start", "end"], [{"period": p, "start": s, "end": e} for p, s, e in BELL]),
        "timetable": (["class", "weekday", "period", "teacher", "subject"], school.timetable),
    }
    out = {}
    for kind, (cols, rows) in files.items():
        path = folder / f"{kind}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
        out[kind] = path
    return out
