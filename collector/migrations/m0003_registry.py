"""Device registry detail: inventories and software changes, drift history, policies, commands."""

VERSION = 3
NAME = "registry"
STATEMENTS = [
    "ALTER TABLE devices ADD COLUMN hostname TEXT",
    "ALTER TABLE devices ADD COLUMN inventory_t DOUBLE PRECISION",
    """CREATE TABLE inventories (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, event_id TEXT NOT NULL,
        t DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL,
        hostname TEXT, os TEXT, software_count BIGINT NOT NULL DEFAULT 0, data TEXT NOT NULL)""",
    "CREATE INDEX inventories_device_t ON inventories (school, device, t)",
    """CREATE TABLE software_changes (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
        change TEXT NOT NULL, name TEXT NOT NULL, version TEXT, old_version TEXT, publisher TEXT,
        event_id TEXT NOT NULL)""",
    "CREATE INDEX software_changes_device_t ON software_changes (school, device, t)",
    """CREATE TABLE drift (
        id {id}, school TEXT NOT NULL, device TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
        field TEXT NOT NULL, old_value TEXT, new_value TEXT, event_id TEXT NOT NULL)""",
    "CREATE INDEX drift_device_t ON drift (school, device, t)",
    """CREATE TABLE policies (
        school TEXT PRIMARY KEY, policy TEXT NOT NULL, version BIGINT NOT NULL,
        updated DOUBLE PRECISION NOT NULL, published_version BIGINT NOT NULL DEFAULT 0,
        published DOUBLE PRECISION)""",
    """CREATE TABLE commands (
        id TEXT PRIMARY KEY, school TEXT NOT NULL, device TEXT NOT NULL, kind TEXT NOT NULL,
        args TEXT NOT NULL, issued DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL, sent DOUBLE PRECISION, acked DOUBLE PRECISION, error TEXT,
        payload TEXT NOT NULL)""",
    "CREATE INDEX commands_state ON commands (state, expires)",
    "CREATE INDEX commands_device ON commands (school, device, issued)",
]
