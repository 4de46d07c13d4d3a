"""Power for the whole school (issue 19): group commands by building / floor / school, 雷雨关机,
wake-on-LAN (what each PC's network is, the per-school switch-on schedule)."""

VERSION = 800
NAME = "power"
STATEMENTS = [
    # one group action from the dashboard, the CLI or the schedule
    """CREATE TABLE power_actions (
        id TEXT PRIMARY KEY, school TEXT NOT NULL, action TEXT NOT NULL, kind TEXT NOT NULL,
        building TEXT, floor TEXT, args TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        actor TEXT NOT NULL)""",
    "CREATE INDEX power_actions_school ON power_actions (school, created)",
    # each PC the action concerned: the command sent to it (or, for wake, to its peer), or why none was
    """CREATE TABLE power_targets (
        action_id TEXT NOT NULL, device TEXT NOT NULL, command_id TEXT, state TEXT NOT NULL,
        peer TEXT, in_use BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (action_id, device))""",
    # the main interface of each PC, from its inventory (wake-on-LAN)
    "ALTER TABLE devices ADD COLUMN net_ip TEXT",
    "ALTER TABLE devices ADD COLUMN net_mask TEXT",
    "ALTER TABLE devices ADD COLUMN net_mac TEXT",
    # switch-on before the first period on school days; last_day: the last date it ran (once a day)
    """CREATE TABLE wake_schedules (
        school TEXT PRIMARY KEY, enabled BIGINT NOT NULL DEFAULT 0, minutes_before BIGINT NOT NULL,
        last_day TEXT, updated DOUBLE PRECISION, updated_by TEXT)""",
]
