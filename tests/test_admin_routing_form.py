"""Alert routing as a form (issue 20): channels, who gets what, quiet hours; the JSON editor kept as
the advanced view. Both go through alerts.config.validate and store the same document."""
from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from alerts import config as alert_config
from dashboard.admin_routing import field_of, from_form
from tests.dash import SCHOOL, add_users, login, make_app, seed_school

STORED = {"channels": {"电教组": {"url": "wecombot://secret-key-123", "person": "张老师"},
                       "电工": {"url": "dingtalk://TOKEN456", "rate_per_min": 10}},
          "routes": [{"match": {"min_severity": "warning"}, "channels": ["电教组"], "continue": True},
                     {"match": {"kind": "fault", "building": "A楼", "floor": "2楼"}, "channels": ["电工"],
                      "escalate": [{"after_min": 30, "channels": ["电教组"]}]}],
          "quiet_hours": {"start": "21:30", "end": "06:30"},
          "rules": {"left_on": {"enabled": True, "after_min": 45}}}


class FormValues(HTMLParser):
    """What a browser would post for one form: its inputs, checked boxes, selected options, textareas."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside = form_id, False
        self.values: dict[str, str] = {}
        self.first: dict[str, str] = {}
        self.select: str | None = None
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") != "checkbox" or "checked" in a:
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select = a["name"]
        elif tag == "option" and self.select:
            self.first.setdefault(self.select, a.get("value", ""))
            if "selected" in a:
                self.values[self.select] = a.get("value", "")
        elif tag == "textarea":
            self.textarea = a["name"]

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.values[self.textarea] = self.values.get(self.textarea, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self.select:
            self.values.setdefault(self.select, self.first.get(self.select, ""))
            self.select = None
        elif tag == "textarea":
            self.textarea = None
        elif tag == "form":
            self.inside = False


def form_of(html: str, form_id: str = "routing-form") -> dict[str, str]:
    p = FormValues(form_id)
    p.feed(html)
    assert p.values, f"no form {form_id}"
    return p.values


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Any]:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    yield app
    db.close()


def admin(app: Any) -> Any:
    c = app.test_client()
    assert login(c, "root").status_code == 302
    return c


URL = f"/admin/routing?school={SCHOOL}"


def test_form_round_trips_to_the_stored_config(app: Any) -> None:
    db = app.extensions["bbt_db"]
    c = admin(app)
    page = c.get(URL).get_data(as_text=True)
    assert c.post(URL, data=form_of(page)).status_code == 302  # the defaults sent back: nothing written
    assert alert_config.load_raw(db, SCHOOL) == {}
    json_form = form_of(page, "routing-json")
    assert c.post(URL, data=json_form | {"config": __import__("json").dumps(STORED, ensure_ascii=False)}
                  ).status_code == 302  # stored through the JSON editor
    page = c.get(URL).get_data(as_text=True)
    assert "secret-key-123" not in page and "wecombot://***" in page and "夜间未关机" in page
    values = form_of(page)
    assert values["ch-0-name"] == "电教组" and values["rt-1-kind"] == "fault" and values["quiet-start"] == "21:30"
    assert c.post(URL, data=values).status_code == 302  # the form sent back as it is
    assert alert_config.load_raw(db, SCHOOL) == STORED  # the same document: secrets, escalation, rules kept
    # an edit in the form: a new channel, its route, no quiet hours; the JSON view shows the same document
    values = form_of(c.get(URL).get_data(as_text=True))
    values.update({"ch-2-name": "校长", "ch-2-url": "mailto://user:pass@example.com", "rt-2-kind": "usage_below",
                   "rt-2-channels": "校长、电教组"})
    values.pop("quiet-on")
    assert c.post(URL, data=values).status_code == 302
    raw = alert_config.load_raw(db, SCHOOL)
    assert raw["channels"]["校长"] == {"url": "mailto://user:pass@example.com"}
    assert raw["routes"][2] == {"match": {"kind": "usage_below"}, "channels": ["校长", "电教组"]}
    assert raw["quiet_hours"] is None and raw["channels"]["电教组"]["url"] == "wecombot://secret-key-123"
    again = form_of(c.get(URL).get_data(as_text=True), "routing-json")
    assert c.post(URL, data=again).status_code == 302 and alert_config.load_raw(db, SCHOOL) == raw
    audit = db.query("SELECT detail FROM audit WHERE action = 'alerts.config' ORDER BY id")
    assert ['"via": "json"' in a["detail"] for a in audit] == [False, True, False, False, True]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"quiet-on": "1", "quiet-start": "25:00"}, "quiet", "请填写 HH:MM 格式的时间"),
    ({"ch-0-url": "nonsense"}, "ch-0-url", "不是有效的通知地址"),
    ({"ch-1-rate": "often"}, "ch-1-rate", "须为正整数"),
    ({"rt-0-channels": "电教组, 门卫"}, "rt-0-channels", "没有名为“门卫”的通道"),
    ({"rt-2-kind": "fault"}, "rt-2-channels", "请至少填写一个通道"),
    ({"ch-2-url": "wecombot://k"}, "ch-2-name", "请填写通道名称"),
    ({"ch-2-name": "电教组", "ch-2-url": "wecombot://k"}, "ch-2-name", "通道名称重复"),
])
def test_a_bad_value_is_shown_next_to_its_field(app: Any, change: dict[str, str], field: str, message: str) -> None:
    db = app.extensions["bbt_db"]
    alert_config.save(db, SCHOOL, STORED)
    c = admin(app)
    values = form_of(c.get(URL).get_data(as_text=True)) | change
    r = c.post(URL, data=values)
    html = r.get_data(as_text=True)
    assert r.status_code == 400
    assert f'id="error-{field}">' in html and message in html.split(f'id="error-{field}">')[1].split("</span>")[0]
    assert alert_config.load_raw(db, SCHOOL) == STORED  # nothing stored
    assert form_of(html)[next(iter(change))] == change[next(iter(change))]  # the user's value kept


def test_english_error_and_field_mapping(app: Any) -> None:
    c = admin(app)
    c.get("/lang/en")
    alert_config.save(app.extensions["bbt_db"], SCHOOL, STORED)
    values = form_of(c.get(URL).get_data(as_text=True)) | {"quiet-start": "7pm"}
    html = c.post(URL, data=values).get_data(as_text=True)
    assert "Enter a time as HH:MM" in html.split('id="error-quiet">')[1]
    doc, where = from_form({"ch-count": "1", "ch-0-name": "a", "ch-0-url": "x", "rt-count": "x"}, {})
    assert doc == {"channels": {"a": {"url": "x"}}} | {"quiet_hours": None} and where["routes"] == []
    with pytest.raises(alert_config.ConfigError) as e:
        alert_config.validate(doc)
    assert field_of(e.value, where) == "ch-0-url"
