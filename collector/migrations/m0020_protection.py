"""Protocol 1.2: the newest antivirus and patch state of each device (``protection`` events; the
events themselves stay in ``events``). ``t`` is the event's time on the device, ``received`` when
the collector stored it; an older event replayed late does not replace a newer state."""

VERSION = 20
NAME = "protection"
STATEMENTS = [
    """CREATE TABLE device_protection (
        school TEXT NOT NULL, device TEXT NOT NULL, event_id TEXT NOT NULL, t DOUBLE PRECISION NOT NULL,
        received DOUBLE PRECISION NOT NULL, data TEXT NOT NULL, PRIMARY KEY (school, device))""",
    # the alert pass reads what was stored since its last look
    "CREATE INDEX device_protection_received ON device_protection (school, received)",
]
