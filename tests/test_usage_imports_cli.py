"""School-model imports (errors name file, line, column; nothing applied), XLSX, the report CLI,
usage settings and the scheduled patrol/publication."""
from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import Workbook, load_workbook

from bbt.cli import main
from collector.rates import usage
from collector.rates.usage_jobs import tick
from collector.school.imports import run_import
from collector.school.tables import ImportError_
from tests.test_usage_week import EXPECTED_TEACHERS, S, confirm_display_missing, import_school, script, write
from tests.usage_script import TZ, ingest


def count(db, table: str) -> int:  # type: ignore[no-untyped-def]
    return int(db.query(f"SELECT COUNT(*) AS n FROM {table} WHERE school = ?", (S,))[0]["n"])


BAD = [
    ("timetable", "class,weekday,period,teacher,subject\n一班,1,1,王,数学\n一班,8,2,李,语文\n",
     "line 3, column weekday"),
    ("timetable", "class,weekday,period,teacher,subject,weeks\n一班,1,1,王,数学,odd\n一班,1,1,李,语文,all\n",
     "line 3, column period"),
    ("bell", "period,start,end\n1,08:00,08:40\n2,08:30,09:10\n", "line 3, column start"),
    ("bell", "period,start,end\n1,08:00,7:40\n", "line 2, column end"),
    ("bell", "period,start,end,schedule,valid_from\n1,08:00,08:40,winter,\n1,07:50,08:30,summer,2026-05-01\n",
     "column valid_from"),
    ("substitutions", "date,class,period,teacher\n2026-11-31,一班,1,赵\n", "line 2, column date"),
    ("calendar", "date,kind,follows_weekday\n2026-11-28,workday,\n", "line 2, column follows_weekday"),
    ("calendar", "date,kind,follows_weekday\n2026-11-23,party,\n", "line 2, column kind"),
    ("calendar", "date,kind,follows_weekday\n2026-09-01,term_start,\n", "line 2, column kind"),
]


def test_bad_rows_name_file_line_column_and_apply_nothing(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_school(db, tmp_path)
    before = {t: count(db, t) for t in ("timetable", "bell_periods", "substitutions", "calendar_days")}
    for kind, text, where in BAD:
        with pytest.raises(ImportError_) as e:
            run_import(db, kind, S, write(tmp_path / f"bad-{kind}.csv", text))
        assert str(e.value).startswith(f"bad-{kind}.csv: ") and where in str(e.value), (kind, text)
        assert {t: count(db, t) for t in before} == before


def test_xlsx_calendar_and_reimport_replaces(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import_school(db, tmp_path)
    wb = Workbook()
    ws = wb.active
    ws.append(["date", "kind", "follows_weekday", "term"])
    ws.append([datetime(2026, 5, 8), "exam", None, None])
    ws.append([datetime(2026, 3, 1), "term_start", None, "2026春季学期"])
    ws.append([datetime(2026, 7, 10), "term_end", None, None])
    wb.save(tmp_path / "calendar.xlsx")
    assert run_import(db, "calendar", S, tmp_path / "calendar.xlsx") == 3
    assert db.query("SELECT name, start_date, end_date FROM terms WHERE school = ?", (S,)) == [
        {"name": "2026春季学期", "start_date": "2026-03-01", "end_date": "2026-07-10"}]
    assert usage.day_lessons(db, S, date(2026, 5, 8)) == []  # exam day: no counted lessons
    run_import(db, "calendar", S, write(tmp_path / "c2.csv", "date,kind,follows_weekday\n2026-05-07,holiday,\n"))
    assert count(db, "terms") == 0 and count(db, "calendar_days") == 1


def test_report_cli_formats_settings_and_schedule(db_path: str, tmp_path: Path) -> None:
    from collector import migrations
    from collector.db import connect

    db = connect(db_path)
    migrations.migrate(db)
    import_school(db, tmp_path)
    ingest(db, S, script())
    confirm_display_missing(db)
    runner = CliRunner()
    r = runner.invoke(main, ["report", "week", "2026-W19", "--school", S, "--format", "json", "--db", db_path])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert [(t["teacher"], t["scheduled"], t["used"]) for t in rep["teachers"]] == [t[:3] for t in EXPECTED_TEACHERS]
    assert rep["excluded_faulty"] == rep["excluded"] == 1 and rep["awaiting_review"] == 0
    assert any("按周二课表" in n for n in rep["notes"])
    r = runner.invoke(main, ["report", "week", "2026-W19", "--school", S, "--format", "csv", "--lang", "en",
                             "--db", db_path])
    rows = list(csv.DictReader(io.StringIO(r.stdout.removeprefix("\ufeff"))))
    assert rows[0] == {"kind": "teacher", "name": "刘", "scheduled": "1", "used": "0", "rate": "0.0",
                       "below_threshold": "true", "excluded": "0", "awaiting_review": "0"}
    assert [x["name"] for x in rows if x["kind"] == "class"] == ["一班", "二班"]
    out = tmp_path / "w19.xlsx"
    r = runner.invoke(main, ["report", "week", "2026-W19", "--school", S, "--format", "xlsx", "--out", str(out),
                             "--db", db_path])
    assert r.exit_code == 0, r.output
    wb = load_workbook(out)
    assert wb.sheetnames == ["汇总", "教师使用率", "班级使用率", "巡课登记"]
    assert [c.value for c in wb["教师使用率"][2]][:5] == ["刘", 1, 0, 0.0, "未达标"]  # worst first
    assert ["王", 8, 4, 0.5, "未达标"] in [[c.value for c in row][:5] for row in wb["教师使用率"].iter_rows()]
    assert wb["巡课登记"].max_row == 1 + 24
    wb.close()
    write(tmp_path / "cal.csv", "date,kind,follows_weekday,term\n2026-05-04,term_start,,W19\n2026-05-10,term_end,,\n")
    r = runner.invoke(main, ["import", "calendar", str(tmp_path / "cal.csv"), "--school", S, "--db", db_path])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["report", "term", "2026-05-06", "--school", S, "--by", "class", "--db", db_path])
    term = json.loads(r.stdout)
    assert (term["term"], term["start"], term["end"]) == ("W19", "2026-05-04", "2026-05-10")
    assert [(x["class"], x["scheduled"], x["used"]) for x in term["rows"]] == [("一班", 12, 5), ("二班", 11, 7)]
    r = runner.invoke(main, ["report", "day", "2026-05-08", "--school", S, "--format", "html", "--db", db_path])
    assert r.exit_code == 0 and "班班通巡课登记 2026-05-08" in r.stdout and "设备未开机 1 节" in r.stdout
    assert r.stdout.count("<tr>") == 1 + 6 and "已使用" in r.stdout
    r = runner.invoke(main, ["report", "week", "2026-W19", "--school", "nope", "--db", db_path])
    assert r.exit_code == 1 and "no school 'nope'" in r.output
    r = runner.invoke(main, ["report", "week", "2026-48", "--school", S, "--db", db_path])
    assert r.exit_code != 0 and "ISO week" in r.output
    r = runner.invoke(main, ["report", "settings", "--school", S, "--set", "threshold=0.5", "--db", db_path])
    assert r.exit_code == 0 and "threshold = 0.5" in r.output
    r = runner.invoke(main, ["report", "settings", "--school", S, "--set", "threshold=60%", "--db", db_path])
    assert r.exit_code != 0 and "threshold must be a number" in r.output
    assert [t["teacher"] for t in usage.below_threshold(db, S, "2026-W19")["teachers"]] == ["刘", "张"]  # 王: 0.5
    # the schedule: the term's stale days stored (the settings change above marked them; reads never
    # write), patrol after Saturday's last lesson, publication on Sunday 20:00
    sat_evening = datetime(2026, 5, 9, 18, 0, tzinfo=TZ).timestamp()
    # Friday's patrol was made by `bbt report day` above
    assert tick(db, sat_evening) == [f"refresh {S} 6 days", f"patrol {S} 2026-05-09"]
    assert tick(db, sat_evening + 60) == []
    sunday = datetime(2026, 5, 10, 20, 1, tzinfo=TZ).timestamp()
    assert tick(db, sunday) == [f"refresh {S} 1 days", f"publish {S} 2026-W19"]
    frozen = usage.published(db, S, "2026-W19")
    assert frozen is not None and frozen["teachers"][3]["below_threshold"] is False  # 王 at 0.5 >= 0.5
    patrol = json.loads(db.query("SELECT record FROM usage_patrols WHERE school = ? AND date = ?",
                                 (S, "2026-05-09"))[0]["record"])
    assert patrol["counts"] == {"device_off": 3, "used": 2, "not_used": 1}
    db.close()
