"""Agent self-update: the package offered to each school's agents, with its rollout percentage."""

VERSION = 811
NAME = "agent_updates"
STATEMENTS = [
    """CREATE TABLE agent_updates (
        school TEXT PRIMARY KEY, version TEXT NOT NULL, filename TEXT NOT NULL, sha256 TEXT NOT NULL,
        size BIGINT NOT NULL, percent DOUBLE PRECISION NOT NULL, created DOUBLE PRECISION NOT NULL,
        created_by TEXT)""",
]
