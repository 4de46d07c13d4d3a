"""Users, roles and API tokens."""

VERSION = 300
NAME = "auth"
STATEMENTS = [
    """CREATE TABLE users (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, school TEXT, class TEXT,
        password_hash TEXT, must_change BIGINT NOT NULL DEFAULT 1,
        password_changed DOUBLE PRECISION, created DOUBLE PRECISION NOT NULL,
        disabled BIGINT NOT NULL DEFAULT 0)""",
    """CREATE TABLE tokens (
        id {id}, token_hash TEXT NOT NULL UNIQUE, user_name TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION, last_used DOUBLE PRECISION)""",
]
