"""Helpers for the dashboard tests: an app over a fresh store, a small seeded school, a user per role."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import protocol
from collector.devices.ingest import Incoming, prepare
from collector.devices.registry import ensure_school
from collector.intake.store import apply_batch

SCHOOL = "s1"
TZ = ZoneInfo("Asia/Shanghai")
PASSWORD = "correct-horse-1"
# role -> (user name, school, class); the teacher names appear in the seeded timetable
USERS = {
    "admin": ("root", None, None),
    "headteacher": ("校长", SCHOOL, None),
    "class_teacher": ("王芳", SCHOOL, "七年级1班"),
    "teacher": ("李强", SCHOOL, None),
    "maintainer": ("电工张", SCHOOL, None),
    "bureau": ("区教育局", None, None),
}
DEVICES = [("pc-101", "七年级1班", "A101", "A楼", "1楼"), ("pc-102", "七年级2班", "A102", "A楼", "1楼"),
           ("pc-201", "八年级1班", "A201", "A楼", "2楼")]


def make_app(db_url: str, **config: Any) -> Any:
    from dashboard import create_app

    cfg = {"BBT_DB": db_url, "TESTING": True, "SECRET_KEY": "test-secret", "PASSWORD_MAX_DAYS": 90}
    cfg.update(config)
    return create_app(cfg)


def seed_school(db: Any) -> None:
    ensure_school(db, SCHOOL, "测试中学", "Asia/Shanghai")
    for dev, klass, room, building, floor in DEVICES:
        db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?)",
                   (SCHOOL, dev, klass, room, building, floor))


def add_users(db: Any, must_change: bool = False) -> dict[str, str]:
    """A user per role; returns role -> API token."""
    from dashboard.users import add_user, create_token

    tokens = {}
    hashed = None
    for role, (name, school, klass) in USERS.items():
        if hashed is None:
            add_user(db, name, role, PASSWORD, school, klass, must_change=must_change)
            hashed = db.query("SELECT password_hash FROM users WHERE name = ?", (name,))[0]["password_hash"]
        else:  # the same password: reuse the argon2 hash, hashing is slow on purpose
            db.execute("INSERT INTO users (name, role, school, class, password_hash, must_change, password_changed, "
                       "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (name, role, school, klass, hashed, int(must_change), time.time(), time.time()))
        tokens[role] = create_token(db, name)
    return tokens


def publish(db: Any, device: str, events: list[tuple[str, datetime, dict[str, Any]]], first_seq: int = 0,
            status: dict[str, Any] | None = None) -> None:
    """Store events (type, time, data) through the real ingest path, as if the device had sent them."""
    batch = []
    if status is not None:
        batch.append(prepare(Incoming(protocol.status_topic(SCHOOL, device), protocol.dumps(status), time.time())))
    objs = [protocol.make_event(f"{device}-{first_seq + i}", first_seq + i, t, ts, data)
            for i, (t, ts, data) in enumerate(events)]
    if objs:
        batch.append(prepare(Incoming(protocol.events_topic(SCHOOL, device), protocol.dumps(objs), time.time())))
    apply_batch(db, batch)


def online(device: str, when: datetime) -> dict[str, Any]:
    return protocol.make_status(True, "startup", when, "boot-1", "0.1.0")


def school_day_at(hour: int, minute: int = 0, days_ago: int = 0) -> datetime:
    """A time on the test's school day: today once its morning (to 09:00) is over, else yesterday, so
    that what the tests seed for the morning has happened whenever the suite runs (the dashboard shows
    nothing ahead of the clock, and the collector calls an event from the future a clock fault)."""
    now = datetime.now(TZ)
    d = now.date() - timedelta(days=days_ago + (now.hour < 9))
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=TZ)


def school_hours() -> float:
    """A clock for the alert engine at 09:00 of the school day: after school hours the engine would also
    raise left_on for every PC that is on."""
    return school_day_at(9, 0).timestamp()


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def login(client: Any, name: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": name, "password": password, "csrf_token": token})
