"""Alerts (firing -> acknowledged -> resolved), their notices, routing config, silences, fault register."""

VERSION = 200
NAME = "alerts"
STATEMENTS = [
    """CREATE TABLE alerts (
        id {id}, school TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL, code TEXT,
        severity TEXT NOT NULL, device TEXT, building TEXT, floor TEXT, room TEXT, class TEXT,
        subject TEXT NOT NULL, detail TEXT, mode TEXT NOT NULL, state TEXT NOT NULL,
        opened DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
        hits BIGINT NOT NULL DEFAULT 1, acked_by TEXT, acked_t DOUBLE PRECISION,
        resolved_t DOUBLE PRECISION, resolve_reason TEXT,
        escalation BIGINT NOT NULL DEFAULT 0, last_notified DOUBLE PRECISION, fault_id BIGINT)""",
    "CREATE INDEX alerts_state ON alerts (school, state)",
    "CREATE INDEX alerts_fingerprint ON alerts (school, fingerprint, state)",
    """CREATE TABLE alert_notices (
        id {id}, alert_id BIGINT NOT NULL, school TEXT NOT NULL, channel TEXT NOT NULL,
        kind TEXT NOT NULL, group_key TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        due DOUBLE PRECISION NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        sent DOUBLE PRECISION, attempts BIGINT NOT NULL DEFAULT 0, note TEXT)""",
    "CREATE INDEX alert_notices_pending ON alert_notices (status, due)",
    "CREATE INDEX alert_notices_alert ON alert_notices (alert_id, channel, kind)",
    """CREATE TABLE alert_config (
        school TEXT PRIMARY KEY, config TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE alert_silences (
        id {id}, school TEXT NOT NULL, kind TEXT NOT NULL, matchers TEXT NOT NULL,
        starts DOUBLE PRECISION NOT NULL, ends DOUBLE PRECISION NOT NULL,
        created_by TEXT, comment TEXT, created DOUBLE PRECISION NOT NULL)""",
    "CREATE TABLE alert_kv (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE fault_tickets (
        id {id}, fault_id BIGINT NOT NULL UNIQUE, school TEXT NOT NULL, device TEXT NOT NULL,
        class TEXT, room TEXT, building TEXT, floor TEXT, code TEXT NOT NULL, severity TEXT NOT NULL,
        reporter TEXT NOT NULL, source TEXT NOT NULL, reported_t DOUBLE PRECISION NOT NULL,
        summary TEXT, cause TEXT, responsibility TEXT, handling TEXT, repair_record TEXT, parts TEXT,
        acked_by TEXT, acked_t DOUBLE PRECISION, repaired_t DOUBLE PRECISION,
        closed_t DOUBLE PRECISION, closed_by TEXT, updated DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX fault_tickets_school ON fault_tickets (school, reported_t)",
    "CREATE INDEX events_received ON events (received)",
]
