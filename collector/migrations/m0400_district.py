"""District: leases, so that work done once (alerts, scheduled reports) runs on one collector."""

VERSION = 400
NAME = "district"
STATEMENTS = [
    """CREATE TABLE leases (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL,
        acquired DOUBLE PRECISION NOT NULL, epoch BIGINT NOT NULL DEFAULT 1)""",
]
