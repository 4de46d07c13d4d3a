"""Core ingest: devices, events, status timeline, quarantine, counters, seq gaps, faults."""

VERSION = 1
NAME = "core"
STATEMENTS = [
    """CREATE TABLE devices (
        school TEXT NOT NULL, device TEXT NOT NULL,
        class TEXT, room TEXT, building TEXT, floor TEXT,
        first_seen DOUBLE PRECISION, last_seen DOUBLE PRECISION,
        online BIGINT NOT NULL DEFAULT 0, status_reason TEXT, status_t DOUBLE PRECISION,
        boot_id TEXT, agent_version TEXT,
        in_use BIGINT NOT NULL DEFAULT 0, in_use_t DOUBLE PRECISION,
        last_heartbeat_t DOUBLE PRECISION, last_seq BIGINT,
        PRIMARY KEY (school, device))""",
    """CREATE TABLE events (
        school TEXT NOT NULL, device TEXT NOT NULL, id TEXT NOT NULL, seq BIGINT NOT NULL,
        type TEXT NOT NULL, ts TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
        received DOUBLE PRECISION NOT NULL, data TEXT NOT NULL,
        clock_fault BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (school, device, id))""",
    "CREATE INDEX events_device_t ON events (school, device, t)",
    "CREATE INDEX events_type_t ON events (school, type, t)",
    """CREATE TABLE status_log (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, online BIGINT NOT NULL,
        reason TEXT, boot_id TEXT, ts TEXT, t DOUBLE PRECISION, received DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX status_log_device ON status_log (school, device, received)",
    """CREATE TABLE quarantine (
        id {id}, received DOUBLE PRECISION NOT NULL, topic TEXT NOT NULL, code TEXT NOT NULL,
        reason TEXT NOT NULL, size BIGINT NOT NULL, head TEXT NOT NULL)""",
    "CREATE TABLE counters (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO counters (name, value) VALUES ('stored', 0), ('duplicates', 0), ('rejected', 0), ('gaps', 0)",
    """CREATE TABLE gaps (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, seq_from BIGINT NOT NULL,
        seq_to BIGINT NOT NULL, filled BIGINT NOT NULL DEFAULT 0,
        opened DOUBLE PRECISION NOT NULL, closed DOUBLE PRECISION)""",
    "CREATE INDEX gaps_device ON gaps (school, device, closed)",
    """CREATE TABLE faults (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, code TEXT NOT NULL,
        severity TEXT NOT NULL, source TEXT NOT NULL, detail TEXT,
        opened_t DOUBLE PRECISION NOT NULL, cleared_t DOUBLE PRECISION,
        event_id TEXT)""",
    "CREATE INDEX faults_device ON faults (school, device, code, cleared_t)",
]
