"""The usage tables (issue 20): grades from class names, 教研组 from the timetable, and search,
只看未达标, grouping, sorting and paging through query arguments on the Flask client."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.db import connect
from collector.lessons.teacher_groups import grade_of, grade_rank, majority, teacher_grades, teacher_groups
from collector.school.imports import ImportError_, run_import
from dashboard.usage_table import NO_GROUP, View, ViewError, build, parse_view
from dashboard.users import create_token
from tests.dash import make_app
from tests.usage_big import CLASSES, GROUPS, WEEK, S, seed, teacher


@pytest.mark.parametrize(("klass", "grade"), [
    ("七年级1班", "七年级"), ("7年级2班", "七年级"), ("三(2)班", "三年级"), ("三（2）班", "三年级"),
    ("3(2)班", "三年级"), ("三年级2班", "三年级"), ("初一3班", "初一"), ("高一(3)班", "高一"), ("高三12班", "高三"),
    ("2023级1班", "2023级"), ("十年级1班", "十年级"), (" 八年级 4 班", "八年级"), ("一班", None), ("", None),
    (None, None), ("美术室", None)])
def test_grade_of(klass: str | None, grade: str | None) -> None:
    assert grade_of(klass) == grade


def test_grade_order_and_majority() -> None:
    grades = ["高一", "七年级", "2023级", "三年级", "初二"]
    assert sorted(grades, key=grade_rank) == ["三年级", "七年级", "初二", "高一", "2023级"]
    assert grade_rank(None) > grade_rank("2023级")
    assert majority(["八年级", None, "七年级", "八年级"]) == "八年级"
    assert majority(["八年级", "七年级"]) == "七年级"  # a tie: the lower grade
    assert majority([None, ""]) is None


def rows(n: int) -> list[dict[str, Any]]:
    return [{"teacher": f"t{i:03d}", "scheduled": 10, "used": i % 11, "rate": (i % 11) / 10,
             "below_threshold": (i % 11) / 10 < 0.6, "excluded": i % 3, "awaiting_review": i % 2} for i in range(n)]


def test_build_pages_sorts_filters_and_groups() -> None:
    data = rows(131)
    t = build(data, View(), "teacher", lambda k: None)
    assert (t.total, t.matched, t.pages, t.first, t.last) == (131, 131, 3, 1, 50)
    assert t.below == sum(1 for r in data if r["below_threshold"])
    shown = t.sections[0].rows
    assert [r["rate"] for r in shown] == sorted(r["rate"] for r in shown) and shown[0]["rate"] == 0
    last = build(data, View(page=9), "teacher", lambda k: None)  # past the end: the last page
    assert (last.page, last.first, last.last, len(last.sections[0].rows)) == (3, 101, 131, 31)
    by_name = build(data, View(sort="name", desc=True), "teacher", lambda k: None).sections[0].rows
    assert by_name[0]["teacher"] == "t130" and by_name[1]["teacher"] == "t129"
    below = build(data, View(below=True, q="t1"), "teacher", lambda k: None)
    assert below.matched == sum(1 for r in data if r["below_threshold"] and r["teacher"].startswith("t1"))
    grouped = build(data, View(group="grade"), "teacher", lambda k: None if k < "t010" else
                    ("高一" if int(k[1:]) % 2 else "七年级"), page_size=200)
    assert [s.name for s in grouped.sections] == ["七年级", "高一", NO_GROUP]
    assert grouped.sections[0].total == len(grouped.sections[0].rows) == 61
    assert grouped.sections[2].below == sum(1 for r in data[:10] if r["below_threshold"])


def test_view_arguments() -> None:
    v = parse_view({"q": " 王 ", "below": "1", "group": "group", "sort": "used", "dir": "desc", "page": "2"})
    assert v == View(q="王", below=True, group="group", sort="used", desc=True, page=2)
    assert v.args(page=3)["page"] == 3 and "page" not in v.args(q="李")  # a new search starts at page 1
    assert View().toggled("rate") == {"dir": "desc"} and View(desc=True).toggled("rate") == {}
    for bad in ({"sort": "salary"}, {"group": "city"}, {"dir": "up"}, {"page": "x"}):
        with pytest.raises(ViewError, match=next(iter(bad))):
            parse_view(bad)
    with pytest.raises(ViewError, match="group"):
        parse_view({"group": "group"}, ("", "grade"))


def test_timetable_group_column(tmp_path: Path) -> None:
    db = connect(str(tmp_path / "g.db"))
    from collector import migrations

    migrations.migrate(db)

    def imp(text: str) -> Any:
        (tmp_path / "t.csv").write_text(text, encoding="utf-8")
        return run_import(db, "timetable", "g", tmp_path / "t.csv")
    imp("班级,星期,节次,教师,科目,教研组\n七年级1班,1,1,王,数学,数学组\n七年级2班,1,2,王,数学,数学组\n"
        "八年级1班,1,1,李,语文,\n八年级2班,1,2,李,语文,\n八年级3班,1,3,李,语文,\n")
    assert teacher_groups(db, "g") == {"王": "数学组"}
    assert teacher_grades(db, "g") == {"王": "七年级", "李": "八年级"}
    imp("class,weekday,period,teacher,subject\n七年级1班,1,1,王,数学\n")  # without the column: groups kept
    assert teacher_groups(db, "g") == {"王": "数学组"}
    with pytest.raises(ImportError_, match="line 3, column group: 王 is in group .数学组. on line 2"):
        imp("班级,星期,节次,教师,科目,学科组\n七年级1班,1,1,王,数学,数学组\n七年级2班,1,2,王,数学,理科组\n")
    assert teacher_groups(db, "g") == {"王": "数学组"}  # nothing of the bad file applied
    imp("班级,星期,节次,教师,科目,教研组\n七年级1班,1,1,王,数学,理科组\n")  # one class's file: the teacher moves
    assert {r["teacher_group"] for r in db.query("SELECT teacher_group FROM timetable WHERE teacher = '王'")} == \
        {"理科组"}
    db.close()


@pytest.fixture(scope="module")
def get(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = Path(tmp_path_factory.mktemp("big"))
    app = make_app(str(tmp / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed(db, tmp)
    db.execute("INSERT INTO users (name, role, school, must_change, created) VALUES ('boss', 'headteacher', ?, 0, 0)",
               (S,))
    token = create_token(db, "boss")
    client = app.test_client()

    def fetch(query: str, page: str = "teachers", status: int = 200) -> str:
        r = client.get(f"/usage/{page}?school={S}&week={WEEK}&{query}", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == status, (query, r.status_code, r.data[:300])
        return r.get_data(as_text=True)
    yield fetch


def names(html: str) -> list[str]:
    body = html.split('id="rates"')[1].split("</table>")[0]
    return [re.sub(r"<[^>]+>", "", td).strip() for td in re.findall(r"<tr class=\"(?:below)?\"><td>(.*?)</td>", body)]


def headings(html: str) -> list[str]:
    found = re.findall(r'<tr class="group"><th colspan="7">(.*?)</th>', html, re.S)
    return [re.sub(r"<small>.*", "", h, flags=re.S).strip() for h in found]


def test_counts_in_words_and_pages(get: Any) -> None:
    html = get("")
    assert "未达标教师 36 人（共 72 人）" in html and "项未达标" not in html
    assert len(names(html)) == 50 and "第 1 / 2 页" in html and "显示第 1–50 条" in html
    assert 'rel="next"' in html and "page=2" in html
    page2 = get("page=2")
    assert len(names(page2)) == 22 and not set(names(page2)) & set(names(html))
    assert "第 2 / 2 页" in page2 and 'rel="prev"' in page2


def test_search_and_below_filter(get: Any) -> None:
    assert names(get("q=教师07")) == ["教师07"]
    below = get("below=1")
    assert len(names(below)) == 36 and 'class="chip in_use"' not in below.split('id="rates"')[1]
    assert "符合条件 36 条" in below and "未达标教师 36 人（共 72 人）" in below
    assert names(get("q=数学组&below=1&group=group")) == [teacher(c, 1) for c in range(12) if c % 4]  # and the group
    assert "没有符合条件的记录" in get("q=nobody")


def test_sort_by_any_column(get: Any) -> None:
    asc = names(get("sort=name"))
    assert asc == sorted(asc) and asc[0] == "教师01"
    desc = names(get("sort=name&dir=desc"))
    assert desc[0] == "教师72"
    top = get("sort=rate&dir=desc")
    assert 'aria-sort="descending"' in top and names(top)[0] in {teacher(c, 5) for c in range(12)}
    for col in ("scheduled", "used", "below", "excluded", "awaiting_review"):
        assert len(names(get(f"sort={col}"))) == 50
    assert "sort must be one of" in get("sort=salary", status=400)


def test_group_by_grade_and_teaching_group(get: Any) -> None:
    by_grade = get("group=grade&below=1")
    assert headings(by_grade) == ["七年级", "八年级", "高一"]
    assert "未达标 12 人（共 12 人）" in by_grade
    seen = headings(get("group=group")) + headings(get("group=group&page=2"))
    assert list(dict.fromkeys(seen)) == [*sorted(GROUPS), "未注明教研组"]  # the unknown group last
    classes = get("group=grade", page="classes")
    assert headings(classes) == ["七年级", "八年级", "高一"] and len(names(classes)) == len(CLASSES)
    assert "未达标班级 12 个（共 12 个）" in classes
    assert "group must be one of" in get("group=group", page="classes", status=400)


def test_term_and_range_views_keep_their_period_in_links(get: Any) -> None:
    term = get("period=term&group=grade")
    assert headings(term) == ["七年级", "八年级", "高一"] and "period=term" in term.split('id="rates"')[1]
    span = get("from=2026-11-16&to=2026-11-20&below=1")
    assert len(names(span)) == 36 and "from=2026-11-16" in span.split('id="rates"')[1].split("<tbody>")[0]
