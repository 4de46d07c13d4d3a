"""The import page through Flask's test client: an unknown school is refused (in Chinese, or English when
chosen) unless 新建学校 is ticked; a devices file merges unless 替换全部; applying refuses a stale preview."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tests.dash import SCHOOL, add_users, csrf_of, login, make_app, seed_school


def app_and_client(tmp_path: Path) -> tuple[Any, Any]:
    app = make_app(str(tmp_path / "bbt.db"), UPLOAD_DIR=str(tmp_path / "uploads"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    c = app.test_client()
    login(c, "root")
    return app, c


def preview(c: Any, kind: str, school: str, name: str, data: bytes, **flags: str) -> Any:
    token = csrf_of(c.get("/admin/imports").get_data(as_text=True))
    return c.post("/admin/imports/preview", data={"csrf_token": token, "kind": kind, "school": school,
                                                  "file": (io.BytesIO(data), name), **flags},
                  content_type="multipart/form-data")


def test_unknown_school_refused_in_the_pages_language(tmp_path: Path) -> None:
    app, c = app_and_client(tmp_path)
    r = preview(c, "devices", "shcool1", "设备.csv", "设备,班级\npc-9,九年级1班\n".encode("gbk"))
    page = r.get_data(as_text=True)
    assert r.status_code == 400 and "没有学校“shcool1”（已有：s1）" in page and "新建学校" in page
    c.get("/lang/en")
    r = preview(c, "devices", "shcool1", "设备.csv", "设备,班级\npc-9,九年级1班\n".encode("gbk"))
    assert "no school &#39;shcool1&#39; in the store" in r.get_data(as_text=True)
    r = preview(c, "devices", "school2", "设备.csv", "设备,班级\npc-9,九年级1班\n".encode("gbk"), create_school="1")
    assert r.status_code == 200 and "School school2 will be created." in r.get_data(as_text=True)
    assert "encoding: GBK (CSV from Chinese Excel)" in r.get_data(as_text=True)
    token = csrf_of(c.get("/admin/imports").get_data(as_text=True))
    c.post("/admin/imports/apply", data={"csrf_token": token})
    db = app.extensions["bbt_db"]
    assert db.query("SELECT class FROM devices WHERE school = 'school2'") == [{"class": "九年级1班"}]


def test_devices_merge_replace_and_a_stale_preview(tmp_path: Path) -> None:
    app, c = app_and_client(tmp_path)
    db = app.extensions["bbt_db"]
    one = "device,class\npc-101,七年级1班\n".encode()
    page = preview(c, "devices", SCHOOL, "one.csv", one).get_data(as_text=True)
    assert "新增 0 行，删除 0 行，修改 0 行，不变 1 行" in page and "removal-warning" not in page
    page = preview(c, "devices", SCHOOL, "one.csv", one, replace="1").get_data(as_text=True)
    assert "删除 2 行" in page and "注意：将删除 2 行已有数据" in page and "pc-201 → 八年级1班（A201 A楼 2楼）" in page
    db.execute("UPDATE devices SET class = '九年级9班' WHERE device = 'pc-102'")  # someone else changes the store
    token = csrf_of(c.get("/admin/imports").get_data(as_text=True))
    r = c.post("/admin/imports/apply", data={"csrf_token": token}, follow_redirects=True)
    assert "预览之后数据已有变化，没有导入" in r.get_data(as_text=True)
    assert db.query("SELECT COUNT(*) AS n FROM devices WHERE class IS NOT NULL")[0]["n"] == 3
    preview(c, "devices", SCHOOL, "one.csv", one, replace="1")
    token = csrf_of(c.get("/admin/imports").get_data(as_text=True))
    r = c.post("/admin/imports/apply", data={"csrf_token": token}, follow_redirects=True)
    assert "已导入 1 行" in r.get_data(as_text=True)
    assert db.query("SELECT device FROM devices WHERE class IS NOT NULL") == [{"device": "pc-101"}]
    r = c.get("/admin/imports/template/timetable.xlsx")
    assert r.status_code == 200 and r.data[:2] == b"PK" and "timetable-template.xlsx" in r.headers[
        "Content-Disposition"]
    assert c.get("/admin/imports/template/gadgets.xlsx").status_code == 404
