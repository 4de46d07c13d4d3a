"""Re-imports as a difference through `bbt import`: devices merge, --replace shows and applies the removal,
--dry-run writes nothing, a timetable replaces only the classes it covers, unknown schools are refused,
the first import of an empty store creates its school; templates import as they are."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from bbt.cli import main
from collector.db import connect
from collector.school.import_columns import KINDS
from collector.school.timetable_grid import _name_of

S = "school1"


def bbt(db_path: str, *args: str) -> Any:
    return CliRunner().invoke(main, [*args, "--db", db_path])


def classes(db_path: str) -> dict[str, Any]:
    d = connect(db_path)
    try:
        return {r["device"]: r["class"] for r in d.query("SELECT device, class FROM devices WHERE school = ?", (S,))}
    finally:
        d.close()


@pytest.fixture
def school(tmp_path: Path, db_path: str) -> str:
    f = tmp_path / "devices.csv"
    f.write_text("设备,班级,教室\n" + "".join(f"pc-{i:02d},{i}班,{100 + i}\n" for i in range(1, 37)),
                 encoding="utf-8-sig")
    r = bbt(db_path, "import", "devices", str(f), "--school", S)
    assert r.exit_code == 0, r.output
    assert "36 added, 0 removed" in r.output and f"imported 36 devices rows for {S} (new school)" in r.output
    return db_path


def test_one_row_device_file_merges(school: str, tmp_path: Path) -> None:
    f = tmp_path / "one.csv"
    f.write_text("device,class\npc-07,七年级7班\n", encoding="utf-8")
    r = bbt(school, "import", "devices", str(f), "--school", S)
    assert r.exit_code == 0, r.output
    assert "1 rows; 0 added, 0 removed, 1 changed, 0 unchanged" in r.output
    assert "~ pc-07 → 7班 (107) => pc-07 → 七年级7班 (107)" in r.output
    got = classes(school)
    assert len([c for c in got.values() if c]) == 36 and got["pc-07"] == "七年级7班" and got["pc-08"] == "8班"


def test_replace_shows_and_applies_the_removal(school: str, tmp_path: Path) -> None:
    f = tmp_path / "one.csv"
    f.write_text("device,class\npc-07,7班\n", encoding="utf-8")
    r = bbt(school, "import", "devices", str(f), "--school", S, "--replace", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "0 added, 35 removed, 0 changed, 1 unchanged" in r.output and "- pc-01 → 1班 (101)" in r.output
    assert "... and 15 more" in r.output and "dry run: nothing written" in r.output
    assert len([c for c in classes(school).values() if c]) == 36
    r = bbt(school, "import", "devices", str(f), "--school", S, "--replace")
    assert r.exit_code == 0 and "35 removed" in r.output
    got = classes(school)
    assert [d for d, c in got.items() if c] == ["pc-07"] and len(got) == 36  # the PCs stay, without a class


def test_typo_school_is_refused_and_new_one_needs_create_school(school: str, tmp_path: Path) -> None:
    f = tmp_path / "bell.csv"
    f.write_text("节次,开始,结束\n1,8:00,8:40\n", encoding="utf-8")
    r = bbt(school, "import", "bell", str(f), "--school", "shcool1")
    assert r.exit_code == 1 and "no school 'shcool1' in the store (known: school1)" in r.output
    assert "--create-school" in r.output
    d = connect(school)
    assert [x["school"] for x in d.query("SELECT school FROM schools")] == [S]
    assert d.query("SELECT COUNT(*) AS n FROM bell_periods")[0]["n"] == 0
    d.close()
    r = bbt(school, "import", "bell", str(f), "--school", "school2", "--create-school")
    assert r.exit_code == 0 and "(new school)" in r.output


def test_timetable_replaces_only_the_classes_it_covers(school: str, tmp_path: Path) -> None:
    bell = tmp_path / "bell.csv"
    bell.write_text("period,start,end\n1,08:00,08:40\n2,08:50,09:30\n", encoding="utf-8")
    assert bbt(school, "import", "bell", str(bell), "--school", S).exit_code == 0
    full = tmp_path / "tt.csv"
    full.write_text("class,weekday,period,teacher,subject\n1班,1,1,王,语文\n1班,1,2,李,数学\n2班,1,1,张,英语\n",
                    encoding="utf-8")
    assert bbt(school, "import", "timetable", str(full), "--school", S).exit_code == 0
    part = tmp_path / "tt-1.csv"
    part.write_text("班级,星期,节次,教师,科目\n1班,周一,1,王,语文\n1班,周二,3,赵,体育\n", encoding="utf-8")
    r = bbt(school, "import", "timetable", str(part), "--school", S)
    assert r.exit_code == 0, r.output
    assert "1 added, 1 removed, 0 changed, 1 unchanged" in r.output
    assert "- 1班 weekday 1 period 2: 数学, 李" in r.output
    assert "warning: tt-1.csv: line 3, column period: period 3 is not in the bell schedule" in r.output
    d = connect(school)
    rows = d.query("SELECT class, weekday, period FROM timetable WHERE school = ? ORDER BY class, weekday, period",
                   (S,))
    assert [(x["class"], x["weekday"], x["period"]) for x in rows] == [("1班", 1, 1), ("1班", 2, 3), ("2班", 1, 1)]
    d.close()
    r = bbt(school, "import", "timetable", str(part), "--school", S, "--replace")
    assert r.exit_code == 0 and "0 added, 1 removed" in r.output and "- 2班 weekday 1 period 1" in r.output


def test_templates_download_and_import_as_they_are(school: str, tmp_path: Path) -> None:
    for kind in KINDS:
        out = tmp_path / f"{kind}.xlsx"
        r = bbt(school, "import", "template", kind, "--out", str(out))
        assert r.exit_code == 0, r.output
        wb = load_workbook(out)
        assert wb.sheetnames[1] == "说明" and wb.worksheets[0]["A2"].value  # an example row
        wb.close()
        r = bbt(school, "import", kind, str(out), "--school", S)
        assert r.exit_code == 0, (kind, r.output)
    r = bbt(school, "import", "template", "gadgets")
    assert r.exit_code == 2 and "'gadgets' is not one of devices" in r.output


@pytest.mark.parametrize("title,expected", [
    ("三(2)班课程表", ("三(2)班", "class")), ("班级：七年级1班", ("七年级1班", "class")),
    ("教师：张三", ("张三", "teacher")), ("张三老师课表", ("张三", "teacher")), ("郑老师", ("郑老师", "teacher")),
    ("2026秋季学期 三(2)班课表", ("三(2)班", "class")), ("王芳", ("王芳", None)),
])
def test_grid_titles(title: str, expected: tuple[str, Any]) -> None:
    assert _name_of(title) == expected


def test_teacher_without_account_is_a_warning(db: Any, tmp_path: Path) -> None:
    from collector.school.imports import plan_import, run_import
    from dashboard.users import add_user

    f = tmp_path / "tt.csv"
    f.write_text("班级,星期,节次,教师,科目\n1班,1,1,王芳,语文\n1班,1,2,王方,语文\n1班,1,3,王方,语文\n",
                 encoding="utf-8")
    assert plan_import(db, "timetable", S, f).warnings == []  # no teacher accounts yet: nothing to compare
    run_import(db, "timetable", S, f)
    add_user(db, "王芳", "teacher", "long-enough-password-1", S)
    warnings = [w.render("en") for w in plan_import(db, "timetable", S, f).warnings]
    assert warnings == ["tt.csv: line 3, column teacher: teacher 王方 has no dashboard account (a teacher's user "
                        "name is their name in the timetable) (hint: check the spelling, or add the teacher's "
                        "account)"]


def test_header_only_file_clears_nothing_without_replace(school: str, tmp_path: Path) -> None:
    f = tmp_path / "devices.csv"
    f.write_text("device,class\n", encoding="utf-8")
    r = bbt(school, "import", "devices", str(f), "--school", S)
    assert r.exit_code == 1 and "devices.csv: the file has a header but no rows" in r.output
    assert len([c for c in classes(school).values() if c]) == 36
    r = bbt(school, "import", "devices", str(f), "--school", S, "--replace")
    assert r.exit_code == 0 and "36 removed" in r.output
    assert not any(classes(school).values())


def test_unknown_classes_teachers_periods_are_warned_with_lines(school: str, tmp_path: Path) -> None:
    tt = tmp_path / "tt.csv"
    tt.write_text("class,weekday,period,teacher,subject\n1班,1,1,王,语文\n", encoding="utf-8")
    bell = tmp_path / "bell.csv"
    bell.write_text("period,start,end\n1,08:00,08:40\n", encoding="utf-8")
    for kind, f in (("timetable", tt), ("bell", bell)):
        assert bbt(school, "import", kind, str(f), "--school", S).exit_code == 0
    subs = tmp_path / "代课.csv"
    subs.write_text("日期,班级,节次,教师\n2026-09-07,1班,1,王\n2026-09-07,一班,2,赵\n", encoding="utf-8")
    r = bbt(school, "import", "substitutions", str(subs), "--school", S)
    assert r.exit_code == 0, r.output
    assert "warning: 代课.csv: line 3, column period: period 2 is not in the bell schedule" in r.output
    assert "warning: 代课.csv: line 3, column class: class 一班 is not in the timetable" in r.output
    assert "warning: 代课.csv: line 3, column teacher: teacher 赵 is not in the timetable" in r.output
    assert "line 2" not in r.output
    dev = tmp_path / "dev.csv"
    dev.write_text("device,class\npc-01,1班\npc-02,2班\n", encoding="utf-8")
    r = bbt(school, "import", "devices", str(dev), "--school", S, "--dry-run")
    assert "warning: dev.csv: line 3, column class: class 2班 is not in the timetable" in r.output
    assert "line 2," not in r.output


def test_substitutions_replace_only_the_dates_they_cover(school: str, tmp_path: Path) -> None:
    w1, w2 = tmp_path / "w1.csv", tmp_path / "w2.csv"
    w1.write_text("date,class,period,teacher\n2026-09-07,1班,1,赵\n2026-09-08,1班,2,钱\n", encoding="utf-8")
    w2.write_text("date,class,period,teacher\n2026-09-08,1班,3,孙\n2026-09-14,1班,1,李\n", encoding="utf-8")
    assert bbt(school, "import", "substitutions", str(w1), "--school", S).exit_code == 0
    r = bbt(school, "import", "substitutions", str(w2), "--school", S)
    assert "2 added, 1 removed, 0 changed" in r.output and "- 2026-09-08 1班 period 2: 钱" in r.output
    d = connect(school)
    got = [(x["date"], x["teacher"]) for x in d.query("SELECT date, teacher FROM substitutions ORDER BY date, period")]
    d.close()
    assert got == [("2026-09-07", "赵"), ("2026-09-08", "孙"), ("2026-09-14", "李")]
