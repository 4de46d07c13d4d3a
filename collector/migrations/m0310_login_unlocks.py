"""Dashboard security: an administrator's unlock of a user's login throttling (dashboard.throttle)."""

VERSION = 310
NAME = "login_unlocks"
STATEMENTS = [
    """CREATE TABLE login_unlocks (
        id {id}, t DOUBLE PRECISION NOT NULL, user_name TEXT NOT NULL, actor TEXT NOT NULL)""",
    "CREATE INDEX login_unlocks_user ON login_unlocks (user_name, t)",
    "CREATE INDEX login_attempts_user_ip ON login_attempts (user_name, ip, t)",
]
