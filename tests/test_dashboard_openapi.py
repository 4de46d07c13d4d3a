"""The API against its own description: schemathesis generates requests from /api/v1/openapi.json
and checks that no response is a server error and every response matches the schema."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.dash import add_users, make_app, seed_school

TOKENS: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    app = make_app(str(Path(tmp_path_factory.mktemp("openapi")) / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    TOKENS.update(add_users(db))
    yield app
    db.close()


@pytest.fixture(scope="module")
def api_schema(api_app: Any) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)


def test_openapi_lists_the_served_api(api_app: Any) -> None:
    spec = api_app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/devices" in spec["paths"] and "/api/v1/stats/ingest" in spec["paths"]
    served = {r.rule for r in api_app.url_map.iter_rules() if r.rule.startswith("/api/v1/")}
    undocumented = sorted(served - set(spec["paths"]) - {"/api/v1/openapi.json"}
                          - {r for r in served if "<" in r or r.endswith(("/ack", "/commands"))})
    assert not undocumented, f"API endpoints missing from openapi.json: {undocumented}"


def conforms(op: Any, headers: dict[str, str]) -> None:
    @given(case=op.as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers)
    check()


def test_api_conforms(api_app: Any) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)
    operations = [r.ok() for r in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 3
    for role in ("headteacher", "class_teacher"):
        for op in operations:
            conforms(op, {"Authorization": f"Bearer {TOKENS[role]}"})
