"""Fault review (protocol.md §3): a register entry awaits review (待核实) until a maintainer or
admin confirms it as affecting teaching (影响上课, with the interval it covered) or rejects it
(误报). Only confirmed entries excuse lessons. ``fault_reviews`` keeps every review; a review
touching a published week adds a dated correction to ``usage_corrections`` (the frozen report
keeps its figures). ``lesson_usage.awaiting`` marks lessons measured during a pending entry.
Every existing entry starts pending, and every computed day is recomputed under the new rule
(published weeks keep the figures they were published with)."""

VERSION = 210
NAME = "fault_review"
STATEMENTS = [
    "ALTER TABLE faults ADD COLUMN review TEXT NOT NULL DEFAULT 'pending'",
    "ALTER TABLE faults ADD COLUMN review_from DOUBLE PRECISION",
    "ALTER TABLE faults ADD COLUMN review_to DOUBLE PRECISION",
    "ALTER TABLE faults ADD COLUMN reviewed_by TEXT",
    "ALTER TABLE faults ADD COLUMN reviewed_t DOUBLE PRECISION",
    """CREATE TABLE fault_reviews (
        id {id}, fault_id BIGINT NOT NULL, school TEXT NOT NULL, review TEXT NOT NULL,
        from_t DOUBLE PRECISION, to_t DOUBLE PRECISION, previous TEXT NOT NULL,
        by_user TEXT NOT NULL, t DOUBLE PRECISION NOT NULL, via TEXT NOT NULL)""",
    "CREATE INDEX fault_reviews_fault ON fault_reviews (fault_id, t)",
    """CREATE TABLE usage_corrections (
        id {id}, school TEXT NOT NULL, week TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
        by_user TEXT NOT NULL, fault_id BIGINT NOT NULL, review TEXT NOT NULL, detail TEXT NOT NULL)""",
    "CREATE INDEX usage_corrections_week ON usage_corrections (school, week, t)",
    "ALTER TABLE lesson_usage ADD COLUMN awaiting BIGINT NOT NULL DEFAULT 0",
    "UPDATE usage_days SET dirty = dirty + 1",
]
