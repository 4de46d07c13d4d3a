"""Users, roles, passwords (argon2) and API tokens — no Flask here."""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from collector.db import Database
from common.errors import BbtError

ROLES = ("admin", "headteacher", "class_teacher", "teacher", "maintainer", "bureau")
ROLE_NAMES = {"admin": "管理员（电教管理员/信息中心）", "headteacher": "校领导/教导处", "class_teacher": "班主任",
              "teacher": "任课教师", "maintainer": "维护人员",
              "bureau": "区县教育局（所有学校，只读）"}
MIN_PASSWORD = 8
_hasher = PasswordHasher()


class UserError(BbtError, ValueError):
    pass


@dataclass
class User:
    name: str
    role: str
    school: str | None
    klass: str | None
    must_change: bool = False
    password_changed: float | None = None

    def password_expired(self, max_days: float, now: float | None = None) -> bool:
        """True when the password is older than ``max_days`` (0 or less: never expires)."""
        if max_days <= 0:
            return False
        now = time.time() if now is None else now
        return self.password_changed is None or now - self.password_changed > max_days * 86400

    def may_see_school(self, school: str) -> bool:
        return self.school is None or self.school == school


def _row_to_user(r: dict) -> User:
    return User(r["name"], r["role"], r["school"], r["class"], bool(r["must_change"]), r["password_changed"])


def add_user(db: Database, name: str, role: str, password: str, school: str | None = None,
             klass: str | None = None, must_change: bool = True) -> User:
    name = name.strip()
    if not name:
        raise UserError("user name is empty")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "class_teacher" and not klass:
        raise UserError("a class_teacher needs --class")
    if role not in ("admin", "bureau") and not school:
        raise UserError(f"a {role} needs --school")
    if role == "bureau" and school:
        raise UserError("a bureau user sees every school: leave out --school")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    if db.query("SELECT 1 AS x FROM users WHERE name = ?", (name,)):
        raise UserError(f"user {name!r} already exists")
    now = time.time()
    db.execute("INSERT INTO users (name, role, school, class, password_hash, must_change, password_changed, created)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (name, role, school, klass, _hasher.hash(password), int(must_change), now, now))
    return User(name, role, school, klass, must_change, now)


def get_user(db: Database, name: str) -> User | None:
    rows = db.query("SELECT * FROM users WHERE name = ? AND disabled = 0", (name,))
    return _row_to_user(rows[0]) if rows else None


def check_password(db: Database, name: str, password: str) -> User | None:
    rows = db.query("SELECT * FROM users WHERE name = ? AND disabled = 0", (name,))
    if not rows or not rows[0]["password_hash"]:
        _hasher.hash(password)  # same cost whether or not the user exists
        return None
    try:
        _hasher.verify(rows[0]["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    return _row_to_user(rows[0])


def set_password(db: Database, name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    n = db.execute("UPDATE users SET password_hash = ?, must_change = 0, password_changed = ? WHERE name = ?",
                   (_hasher.hash(password), time.time(), name))
    if not n:
        raise UserError(f"no user {name!r}")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Database, name: str) -> str:
    if get_user(db, name) is None:
        raise UserError(f"no user {name!r}")
    token = "bbt_" + secrets.token_urlsafe(32)
    db.execute("INSERT INTO tokens (token_hash, user_name, created) VALUES (?, ?, ?)",
               (_digest(token), name, time.time()))
    return token


def revoke_token(db: Database, token: str) -> bool:
    return bool(db.execute("UPDATE tokens SET revoked = ? WHERE token_hash = ? AND revoked IS NULL",
                           (time.time(), _digest(token))))


def user_for_token(db: Database, token: str) -> User | None:
    rows = db.query("SELECT u.* FROM tokens t JOIN users u ON u.name = t.user_name "
                    "WHERE t.token_hash = ? AND t.revoked IS NULL AND u.disabled = 0", (_digest(token),))
    return _row_to_user(rows[0]) if rows else None


def list_users(db: Database, school: str | None = None) -> list[dict]:
    """Every user (of one school, plus the school-less admins), without password hashes."""
    where, params = ("WHERE school = ? OR school IS NULL", (school,)) if school else ("", ())
    rows = db.query(f"SELECT name, role, school, class, must_change, password_changed, created, disabled "
                    f"FROM users {where} ORDER BY role, name", params)
    return rows


def update_user(db: Database, name: str, role: str, school: str | None, klass: str | None, disabled: bool) -> None:
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if role == "class_teacher" and not klass:
        raise UserError("a class_teacher needs a class")
    if role not in ("admin", "bureau") and not school:
        raise UserError(f"a {role} needs a school")
    n = db.execute("UPDATE users SET role = ?, school = ?, class = ?, disabled = ? WHERE name = ?",
                   (role, school or None, klass or None, int(disabled), name))
    if not n:
        raise UserError(f"no user {name!r}")


def reset_password(db: Database, name: str, password: str) -> None:
    """An admin sets a temporary password: the user must change it at the next login."""
    set_password(db, name, password)
    db.execute("UPDATE users SET must_change = 1 WHERE name = ?", (name,))


def list_tokens(db: Database, name: str | None = None) -> list[dict]:
    where, params = ("WHERE user_name = ?", (name,)) if name else ("", ())
    return db.query(f"SELECT id, user_name, created, revoked, last_used FROM tokens {where} ORDER BY id", params)


def revoke_token_id(db: Database, token_id: int) -> bool:
    return bool(db.execute("UPDATE tokens SET revoked = ? WHERE id = ? AND revoked IS NULL", (time.time(), token_id)))


def revoke_user_tokens(db: Database, name: str) -> int:
    return db.execute("UPDATE tokens SET revoked = ? WHERE user_name = ? AND revoked IS NULL", (time.time(), name))
