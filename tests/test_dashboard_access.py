"""Every role × every endpoint of the dashboard, generated from the app's URL map.

EXPECTED is the reviewed role matrix. A new endpoint that is not listed here fails
``test_every_endpoint_is_in_the_matrix``; every listed one is called by every role (and by
nobody) and must answer 403 exactly for the roles not allowed, never a server error.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.users import ROLES
from tests.dash import DEVICES, SCHOOL, USERS, add_users, make_app, seed_school

ALL = set(ROLES)
PUBLIC = {"public"}
DEVICE_VIEW = {"admin", "headteacher", "maintainer", "class_teacher", "bureau"}
SCHOOL_WIDE = {"admin", "headteacher", "bureau"}
MARKERS = {"admin", "headteacher", "class_teacher", "teacher"}
ASSETS_READ = {"admin", "headteacher", "maintainer"}
ASSETS_EDIT = {"admin", "maintainer"}
EXPECTED: dict[str, set[str]] = {
    "static": PUBLIC, "auth.login": PUBLIC, "auth.logout": PUBLIC, "i18n.switch": PUBLIC,
    "openapi.openapi": PUBLIC, "enrol.enrol": PUBLIC,  # enrolment: the school's secret is the credential
    "auth.password": ALL,
    "overview.index": ALL, "overview.data": ALL,
    "devices.index": DEVICE_VIEW, "devices.detail": DEVICE_VIEW,
    "devices.command": {"admin", "maintainer"},
    "faults.index": DEVICE_VIEW, "faults.repair": ALL,
    "faults.ack": {"admin", "headteacher", "maintainer"},
    "faults.register": {"admin", "maintainer"}, "faults.ticket": {"admin", "maintainer"},
    "usage.teachers": ALL - {"maintainer"}, "usage.classes": SCHOOL_WIDE | {"class_teacher"},
    "usage.lessons": ALL - {"maintainer"}, "usage.export": SCHOOL_WIDE, "usage.print_view": SCHOOL_WIDE,
    "usage.export_csv": SCHOOL_WIDE,
    "usage.publish": {"admin", "headteacher"},  # 公布 the week (issue 20)
    "admin.index": {"admin"}, "admin.users": {"admin"}, "admin.user_add": {"admin"}, "admin.user_edit": {"admin"},
    "admin.settings": {"admin"}, "admin.audit_log": {"admin"}, "admin.imports_form": {"admin"},
    "admin.imports_preview": {"admin"}, "admin.imports_apply": {"admin"}, "admin.policy_editor": {"admin"},
    "admin.enrolment_page": {"admin"}, "admin.imports_template": {"admin"},
    "admin.routing": {"admin"},
    "api.devices": DEVICE_VIEW, "api.stats_ingest": {"admin", "headteacher", "maintainer", "bureau"}, "api.me": ALL,
    "api.usage_teachers": ALL - {"maintainer"}, "api.usage_classes": SCHOOL_WIDE | {"class_teacher"},
    "api.lessons": ALL - {"maintainer"}, "api.alerts": DEVICE_VIEW,
    "api.usage_report": SCHOOL_WIDE, "api.usage_trend": ALL - {"maintainer"},
    "api.alert_ack": {"admin", "headteacher", "maintainer"},
    "api.command": {"admin", "maintainer"},
    "api.alert_detail": DEVICE_VIEW, "api.faults_list": DEVICE_VIEW, "api.faults_stats": DEVICE_VIEW,
    "api.faults_xlsx": DEVICE_VIEW, "api.faults_report": ALL, "api.faults_update": {"admin", "maintainer"},
    "api.faults_review": {"admin", "maintainer"}, "faults.review": {"admin", "maintainer"},
    "alert_links.link_ack": PUBLIC, "alert_links.link_review": PUBLIC,
    "district.index": {"bureau", "admin"}, "district.api_schools": {"bureau", "admin"},
    # where a lesson is taught (issue 16): marking 外出上课/调课, reversing, 课外使用
    "usage.mark_lesson": MARKERS, "usage.reverse_mark": {"admin", "headteacher"}, "usage.outside": DEVICE_VIEW,
    "api.marks_list": MARKERS, "api.marks_create": MARKERS, "api.marks_reverse": {"admin", "headteacher"},
    "api.usage_outside": DEVICE_VIEW,
    # the asset ledger and stocktakes (issue 18): admin and maintainer edit, the headteacher reads
    "assets.index": ASSETS_READ, "assets.export": ASSETS_READ, "assets.detail": ASSETS_READ,
    "assets.labels": ASSETS_READ,
    "assets.new": ASSETS_EDIT, "assets.edit": ASSETS_EDIT, "assets.confirm": ASSETS_EDIT,
    "stocktakes.index": ASSETS_READ, "stocktakes.show": ASSETS_READ, "stocktakes.export": ASSETS_READ,
    "stocktakes.print_view": ASSETS_READ, "stocktakes.start": ASSETS_EDIT, "stocktakes.tick": ASSETS_EDIT,
    "stocktakes.finish": ASSETS_EDIT,
    # 电源管理 (issue 19): group commands, 雷雨关机, wake-on-LAN
    "power.index": {"admin", "maintainer"}, "power.preview": {"admin", "maintainer"},
    "power.send": {"admin", "maintainer"}, "power.result": {"admin", "maintainer"},
    "power.result_data": {"admin", "maintainer"}, "power.schedule": {"admin", "maintainer"},
    # projectors (PJLink) and the agent packages of self-update (public: checked by the signed offer's hash)
    "api.projector_list": DEVICE_VIEW, "agent_updates.wheel": PUBLIC,
}
# values for URL variables: the class teacher's own class and device, so scoping does not turn into 403
VALUES = {"school": SCHOOL, "device": DEVICES[0][0], "name": USERS["teacher"][0], "lang": "en", "filename": "bbt.css",
          "alert_id": "1", "fault_id": "1", "ticket_id": "1", "kind": "shutdown", "mark_id": "1",
          "asset_id": "1", "stocktake_id": "1", "action_id": "p-0"}
QUERY = {"school": SCHOOL, "week": "2026-W48", "date": "2026-11-23"}


def _rules() -> list[tuple[str, str, str]]:
    app = make_app(":memory:")
    try:
        out = []
        for rule in app.url_map.iter_rules():
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                path = rule.rule
                for arg in rule.arguments:
                    path = path.replace(f"<{arg}>", VALUES[arg]).replace(f"<path:{arg}>", VALUES[arg])
                    path = path.replace(f"<int:{arg}>", VALUES[arg])
                out.append((rule.endpoint, method, path))
        return out
    finally:
        app.extensions["bbt_db"].close()


RULES = _rules()


@pytest.fixture(scope="module")
def matrix_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, dict[str, str]]]:
    app = make_app(str(Path(tmp_path_factory.mktemp("matrix")) / "bbt.db"), WTF_CSRF_ENABLED=False)
    db = app.extensions["bbt_db"]
    seed_school(db)
    tokens = add_users(db)
    yield app, tokens
    db.close()


def test_every_endpoint_is_in_the_matrix() -> None:
    missing = sorted({ep for ep, _, _ in RULES if ep not in EXPECTED})
    assert not missing, f"endpoints without an expected role set in the test matrix: {missing}"
    assert len({ep for ep, _, _ in RULES}) >= 20


@pytest.mark.parametrize("endpoint,method,path", RULES, ids=[f"{m} {p}" for _, m, p in RULES])
def test_role_matrix(matrix_app: tuple[Any, dict[str, str]], endpoint: str, method: str, path: str) -> None:
    app, tokens = matrix_app
    allowed = EXPECTED[endpoint]
    client = app.test_client()
    query = QUERY if method == "GET" else {}
    anon = client.open(path, method=method, query_string=query)
    anon.close()
    if "public" in allowed:
        assert anon.status_code < 500
        assert anon.status_code != 403, f"{method} {path} refuses anonymous users"
    else:
        assert anon.status_code in (401, 302), f"anonymous {method} {path} -> {anon.status_code}"
        if anon.status_code == 302:
            assert "/login" in anon.headers["Location"]
    for role in ROLES:
        r = client.open(path, method=method, query_string=query, headers={"Authorization": f"Bearer {tokens[role]}"})
        r.close()
        assert r.status_code < 500, f"{role} {method} {path} -> {r.status_code}"
        if "public" in allowed or role in allowed:
            assert r.status_code != 403, f"{role} should be allowed {method} {path}"
        else:
            assert r.status_code == 403, f"{role} must be refused {method} {path} (got {r.status_code})"


def test_undeclared_view_is_refused_to_everybody(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "bbt.db"))
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    db = app.extensions["bbt_db"]
    tokens = add_users(db)
    client = app.test_client()
    for role in ROLES:
        r = client.get("/forgotten", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == 403 and b"secret" not in r.data
    db.close()
