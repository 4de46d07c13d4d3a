"""Trust: the audit log (backups, restores, retention purges, personal-data purges)."""

VERSION = 500
NAME = "audit"
STATEMENTS = [
    """CREATE TABLE audit (
        id {id}, t DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        target TEXT, detail TEXT)""",
    "CREATE INDEX audit_t ON audit (t)",
]
