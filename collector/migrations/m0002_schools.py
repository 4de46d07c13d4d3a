"""Schools: display name, time zone and per-school settings (JSON)."""

VERSION = 2
NAME = "schools"
STATEMENTS = [
    """CREATE TABLE schools (
        school TEXT PRIMARY KEY, name TEXT, tz TEXT NOT NULL DEFAULT 'Asia/Shanghai',
        settings TEXT NOT NULL DEFAULT '{{}}')""",
]
