"""Dashboard security: server-side sessions, login attempts (rate limit). (The audit log is m0500.)"""

VERSION = 301
NAME = "security"
STATEMENTS = [
    """CREATE TABLE web_sessions (
        sid_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL, ip TEXT, revoked DOUBLE PRECISION)""",
    "CREATE INDEX web_sessions_user ON web_sessions (user_name, revoked)",
    """CREATE TABLE login_attempts (
        id {id}, t DOUBLE PRECISION NOT NULL, user_name TEXT NOT NULL, ip TEXT NOT NULL, ok BIGINT NOT NULL)""",
    "CREATE INDEX login_attempts_user ON login_attempts (user_name, t)",
    "CREATE INDEX login_attempts_ip ON login_attempts (ip, t)",
]
