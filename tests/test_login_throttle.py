"""Login throttling that cannot lock the real user out, an administrator's unlock (CLI and users page,
audited), and a login ``next`` that only goes to this site."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dashboard import throttle
from dashboard.auth import safe_next
from tests.dash import PASSWORD, USERS, add_users, csrf_of, make_app, seed_school
from tests.helpers import run_bbt

ADMIN = USERS["admin"][0]
ATTACKER, OFFICE, HOME = "10.0.0.66", "10.0.0.5", "192.168.1.9"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    a = make_app(str(tmp_path / "bbt.db"))
    seed_school(a.extensions["bbt_db"])
    add_users(a.extensions["bbt_db"])
    yield a
    a.extensions["bbt_db"].close()


def login_from(app: Any, ip: str, name: str, password: str = PASSWORD, next_: str | None = None) -> Any:
    client = app.test_client()
    env = {"REMOTE_ADDR": ip}
    url = "/login" + (f"?next={quote(next_, safe='')}" if next_ is not None else "")
    token = csrf_of(client.get(url, environ_base=env).get_data(as_text=True))
    return client.post(url, data={"username": name, "password": password, "csrf_token": token}, environ_base=env)


def test_delays_grow_and_are_capped() -> None:
    waits = [throttle.delay(n, throttle.FREE_PAIR) for n in range(1, 16)]
    assert waits[:throttle.FREE_PAIR - 1] == [0.0] * (throttle.FREE_PAIR - 1)
    assert waits[throttle.FREE_PAIR - 1:throttle.FREE_PAIR + 3] == [2.0, 4.0, 8.0, 16.0]
    assert waits == sorted(waits) and waits[-1] == throttle.CAP_S
    # the per-user bound does not apply to an address the user has logged in from
    many = [100.0 + i for i in range(throttle.FREE_USER + 5)]
    assert throttle.wait_s([], [], many, known_address=False, now=140.0) > 0
    assert throttle.wait_s([], [], many, known_address=True, now=140.0) == 0


def test_wrong_passwords_from_one_address_do_not_lock_the_admin_out(app: Any) -> None:
    db = app.extensions["bbt_db"]
    for i in range(5):  # five wrong passwords, each checked: time passes between them (past the delays)
        if i:
            db.execute("UPDATE login_attempts SET t = t - 20")
        assert login_from(app, ATTACKER, ADMIN, "guess").status_code == 401
    r = login_from(app, ATTACKER, ADMIN)  # even the right password waits at the guesser's address
    assert r.status_code == 429 and "秒后再试" in r.get_data(as_text=True)
    ok = login_from(app, OFFICE, ADMIN)  # the real admin, elsewhere, gets in at once
    assert ok.status_code == 302 and ok.headers["Location"] == "/"
    now = time.time()
    # the guesser's wait grows with each failure: 5 failures -> 8 s after the last one
    assert 4.0 < throttle.locked_for(db, ADMIN, ATTACKER, now) <= 8.0
    throttle.note_attempt(db, ADMIN, ATTACKER, False, now)
    assert 8.0 < throttle.locked_for(db, ADMIN, ATTACKER, now) <= 16.0
    # the admin's login elsewhere does not give the guesser fresh tries; an hour later they are forgotten
    assert throttle.locked_for(db, ADMIN, ATTACKER, now + throttle.WINDOW_S + 1) == 0


def test_many_addresses_slow_down_new_ones_but_not_where_the_user_logged_in_before(app: Any) -> None:
    assert login_from(app, OFFICE, ADMIN).status_code == 302  # the admin's usual address
    db = app.extensions["bbt_db"]
    db.execute("UPDATE login_attempts SET t = t - 120")  # that was a while ago
    t = time.time() - 5
    for i in range(throttle.FREE_USER + 2):  # then a botnet, one guess per address
        throttle.note_attempt(db, ADMIN, f"172.16.0.{i}", False, t + i * 0.1)
    assert throttle.locked_for(db, ADMIN, HOME) > 0  # an address never used by the admin waits ...
    assert login_from(app, HOME, ADMIN).status_code == 429
    assert login_from(app, OFFICE, ADMIN).status_code == 302  # ... the known one does not
    assert login_from(app, HOME, USERS["teacher"][0]).status_code == 302  # nor does another user


def test_one_address_trying_many_names_waits(app: Any) -> None:
    db = app.extensions["bbt_db"]
    t = time.time() - 5
    for i in range(throttle.FREE_ADDRESS + 2):  # 12 names, one guess each: 8 s to wait after the last
        throttle.note_attempt(db, f"name-{i}", ATTACKER, False, t + i * 0.1)
    assert login_from(app, ATTACKER, USERS["teacher"][0]).status_code == 429
    assert login_from(app, OFFICE, USERS["teacher"][0]).status_code == 302


def test_admin_unlocks_from_the_cli_and_the_users_page_audited(app: Any, tmp_path: Path) -> None:
    db = app.extensions["bbt_db"]
    teacher = USERS["teacher"][0]
    for i in range(4):  # four wrong passwords, each checked: time passes between them
        if i:
            db.execute("UPDATE login_attempts SET t = t - 20")
        assert login_from(app, ATTACKER, teacher, "guess").status_code == 401
    assert login_from(app, ATTACKER, teacher).status_code == 429
    r = run_bbt("user", "unlock", teacher, "--db", str(tmp_path / "bbt.db"))
    assert r.returncode == 0 and "4" in r.stdout and teacher in r.stdout, r.stderr
    assert login_from(app, ATTACKER, teacher).status_code == 302  # lifted
    assert run_bbt("user", "unlock", "nobody-here", "--db", str(tmp_path / "bbt.db")).returncode == 1
    # the users page shows who failed and offers the unlock
    for i in range(4):
        if i:
            db.execute("UPDATE login_attempts SET t = t - 20")
            db.execute("UPDATE login_unlocks SET t = t - 20")
        assert login_from(app, ATTACKER, teacher, "guess").status_code == 401
    admin = app.test_client()
    assert login_from_client(admin, OFFICE, ADMIN).status_code == 302
    page = admin.get("/admin/users", environ_base={"REMOTE_ADDR": OFFICE}).get_data(as_text=True)
    assert "登录失败 4 次" in page and "解除登录限制" in page
    r = admin.post(f"/admin/users/{teacher}", data={"action": "unlock", "csrf_token": csrf_of(page)},
                   environ_base={"REMOTE_ADDR": OFFICE})
    assert r.status_code == 302
    assert login_from(app, ATTACKER, teacher).status_code == 302
    audit = db.query("SELECT actor, action, target, detail FROM audit WHERE action = 'user.unlock' ORDER BY id")
    assert [(a["target"], a["actor"] == ADMIN) for a in audit] == [(teacher, False), (teacher, True)]
    assert audit[0]["actor"].startswith("cli:") and '"forgiven": 4' in audit[1]["detail"]


def login_from_client(client: Any, ip: str, name: str) -> Any:
    env = {"REMOTE_ADDR": ip}
    token = csrf_of(client.get("/login", environ_base=env).get_data(as_text=True))
    return client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token},
                       environ_base=env)


BAD_NEXT = ["/\\evil.com", "//evil.com", "https://evil.com", "/%5Cevil.com", "/%5cevil.com", "\\\\evil.com",
            "/%2F%2Fevil.com", "/%255Cevil.com", "/\t/evil.com", "/\n/evil.com", "/\x00", "javascript:alert(1)",
            "evil.com", " /devices", "http:/evil.com", "/\\/evil.com", "///evil.com", "/%09/evil.com", ""]
GOOD_NEXT = ["/", "/devices/", "/usage/teachers?school=s1&week=2026-W48", "/admin/users", "/faults/?q=%E6%8A%95"]


@pytest.mark.parametrize("value", BAD_NEXT)
def test_next_refuses_other_sites(value: str) -> None:
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", GOOD_NEXT)
def test_next_keeps_paths_of_this_site(value: str) -> None:
    assert safe_next(value) == value


def test_login_redirects_only_within_the_site(app: Any) -> None:
    for i, value in enumerate(["/\\evil.com", "//evil.com", "/%5Cevil.com", "https://evil.com"]):
        r = login_from(app, f"10.1.0.{i}", ADMIN, next_=value)
        assert r.status_code == 302 and r.headers["Location"] == "/", value
    r = login_from(app, "10.1.0.9", ADMIN, next_="/devices/?school=s1")
    assert r.headers["Location"] == "/devices/?school=s1"


def test_a_browser_sent_to_another_site_after_login_stays_here(app: Any) -> None:
    """Chromium, as a person who followed a crafted link: /login?next=/\\evil.example."""
    from tests.browser import browser, serve

    with serve(app) as base, browser() as b:
        page = b.new_page()
        page.goto(base + "/login?next=" + quote("/\\evil.example/phish", safe=""))
        page.fill("input[name=username]", ADMIN)
        page.fill("input[name=password]", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == base + "/"
        assert "evil" not in page.url
