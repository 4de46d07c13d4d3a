"""Dashboard security: sessions, login rate limit, forced password changes, CSRF, cookies, tokens, audit."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard import sessions, throttle
from tests.dash import PASSWORD, USERS, add_users, csrf_of, login, make_app, seed_school
from tests.helpers import run_bbt


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    a = make_app(str(tmp_path / "bbt.db"))
    seed_school(a.extensions["bbt_db"])
    yield a
    a.extensions["bbt_db"].close()


@pytest.fixture
def users(app: Any) -> dict[str, str]:
    return add_users(app.extensions["bbt_db"])


def session_cookie(client: Any) -> str | None:
    c = client.get_cookie("bbt_session")
    return c.value if c else None


def test_login_issues_new_session_and_logout_kills_copied_cookie(app: Any, users: dict[str, str]) -> None:
    client = app.test_client()
    client.get("/login")
    before = session_cookie(client)
    r = login(client, USERS["headteacher"][0])
    assert r.status_code == 302 and r.headers["Location"] == "/"
    after = session_cookie(client)
    assert after and after != before
    set_cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Secure" not in set_cookie
    assert client.get("/").status_code == 200
    # a thief copies the cookie; after logout it is worthless
    thief = app.test_client()
    thief.set_cookie("bbt_session", after)
    assert thief.get("/").status_code == 200
    token = csrf_of(client.get("/").get_data(as_text=True))
    client.post("/logout", data={"csrf_token": token})
    assert thief.get("/").status_code == 302


def test_secure_cookie_over_tls(app: Any, users: dict[str, str]) -> None:
    client = app.test_client()
    page = client.get("/login", base_url="https://bbt.school.example")
    r = client.post("/login", base_url="https://bbt.school.example",
                    headers={"Referer": "https://bbt.school.example/login"},
                    data={"username": USERS["admin"][0], "password": PASSWORD,
                          "csrf_token": csrf_of(page.get_data(as_text=True))})
    assert r.status_code == 302
    assert "Secure" in r.headers["Set-Cookie"]
    assert r.headers["Strict-Transport-Security"]


def test_login_rate_limited_per_user(app: Any, users: dict[str, str]) -> None:
    client = app.test_client()
    name = USERS["teacher"][0]
    codes = [login(client, name, "wrong-password").status_code for _ in range(5)]
    assert codes[:throttle.FREE_PAIR] == [401] * throttle.FREE_PAIR and set(codes[throttle.FREE_PAIR:]) == {429}
    r = login(client, name)  # the right password, but this address must wait now (more: tests/test_login_throttle)
    assert r.status_code == 429
    assert "秒后再试" in r.get_data(as_text=True)
    assert login(app.test_client(), USERS["maintainer"][0]).status_code == 302  # others unaffected
    db = app.extensions["bbt_db"]
    assert throttle.locked_for(db, name, "127.0.0.1", now=time.time() + throttle.WINDOW_S + 1) == 0
    # attempts (names, addresses) are not kept for ever: a day later the next login drops them
    db.execute("UPDATE login_attempts SET t = t - ?", (sessions.KEEP_ATTEMPTS_S + 1,))
    login(app.test_client(), USERS["admin"][0])
    assert [r["user_name"] for r in db.query("SELECT user_name FROM login_attempts")] == [USERS["admin"][0]]


def test_password_change_forced_on_first_login(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    add_users(db, must_change=True)
    client = app.test_client()
    name = USERS["headteacher"][0]
    login(client, name)
    r = client.get("/devices/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/password")
    assert client.get("/api/v1/devices?school=s1").get_json()["error"] == "password_change_required"
    page = client.get("/password").get_data(as_text=True)
    assert "首次登录" in page
    token = csrf_of(page)
    bad = client.post("/password", data={"current": PASSWORD, "new": "short", "confirm": "short", "csrf_token": token})
    assert bad.status_code == 400 and "至少需要 8 个字符" in bad.get_data(as_text=True)
    other = app.test_client()
    login(other, name)  # a second session of the same user
    r = client.post("/password", data={"current": PASSWORD, "new": "a-new-passw0rd", "confirm": "a-new-passw0rd",
                                       "csrf_token": token})
    assert r.status_code == 302
    assert client.get("/devices/").status_code == 200
    assert other.get("/devices/").status_code == 302  # other sessions end with the password change
    assert login(app.test_client(), name, "a-new-passw0rd").headers["Location"] == "/"
    db.close()


def test_password_expires(app: Any, users: dict[str, str]) -> None:
    db = app.extensions["bbt_db"]
    name = USERS["maintainer"][0]
    db.execute("UPDATE users SET password_changed = ? WHERE name = ?", (time.time() - 91 * 86400, name))
    client = app.test_client()
    login(client, name)
    r = client.get("/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/password")
    assert "90 天未修改" in client.get("/password").get_data(as_text=True)


def test_csrf_required_on_forms(app: Any, users: dict[str, str]) -> None:
    client = app.test_client()
    assert client.post("/login", data={"username": USERS["admin"][0], "password": PASSWORD}).status_code == 400
    login(client, USERS["admin"][0])
    r = client.post("/admin/settings", data={"school": "s1", "threshold_pct": "70", "min_use_minutes": "10"})
    assert r.status_code == 400
    token = csrf_of(client.get("/admin/settings").get_data(as_text=True))
    r = client.post("/admin/settings", data={"school": "s1", "threshold_pct": "70", "min_use_minutes": "10",
                                             "csrf_token": token})
    assert r.status_code == 302


def test_headers(app: Any) -> None:
    r = app.test_client().get("/login")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"


def test_token_revoke_cli_and_disabled_user(app: Any, users: dict[str, str], tmp_path: Path) -> None:
    db_path = str(tmp_path / "bbt.db")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {users['maintainer']}"}
    assert client.get("/api/v1/devices?school=s1", headers=auth).status_code == 200
    r = run_bbt("token", "list", "--db", db_path)
    assert r.returncode == 0 and USERS["maintainer"][0] in r.stdout and users["maintainer"] not in r.stdout
    r = run_bbt("token", "revoke", "--token-stdin", "--db", db_path, input=users["maintainer"] + "\n")
    assert r.returncode == 0, r.stderr
    assert client.get("/api/v1/devices?school=s1", headers=auth).status_code == 401
    r = run_bbt("token", "revoke", "--token-stdin", "--db", db_path, input=users["maintainer"] + "\n")
    assert r.returncode != 0 and "no such active token" in r.stderr
    r = run_bbt("token", "revoke", "--user", USERS["teacher"][0], "--db", db_path)
    assert r.returncode == 0 and "revoked 1" in r.stdout
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {users['teacher']}"}).status_code == 401


def test_admin_actions_are_audited(app: Any, users: dict[str, str]) -> None:
    client = app.test_client()
    login(client, USERS["admin"][0])
    token = csrf_of(client.get("/admin/users").get_data(as_text=True))
    r = client.post("/admin/users", data={"name": "赵老师", "role": "teacher", "school": "s1", "csrf_token": token},
                    follow_redirects=True)
    page = r.get_data(as_text=True)
    assert "已添加用户 赵老师" in page
    r = client.post("/admin/users/赵老师", data={"action": "update", "role": "teacher", "school": "s1",
                                                 "disabled": "1", "csrf_token": token})
    assert r.status_code == 302
    log = client.get("/admin/audit").get_data(as_text=True)
    assert "user.add" in log and "user.update" in log and "赵老师" in log
    rows = app.extensions["bbt_db"].query("SELECT actor, action, detail FROM audit ORDER BY id")
    assert [r["action"] for r in rows] == ["user.add", "user.update"]
    assert all(r["actor"] == USERS["admin"][0] for r in rows)
    assert "password" not in " ".join(r["detail"] for r in rows)
