"""Projectors and panels (PJLink): each classroom's projector address (devices import `projector`)
and the latest state its agent reported (`projector` events, protocol v1.1)."""

VERSION = 810
NAME = "projectors"
STATEMENTS = [
    "ALTER TABLE devices ADD COLUMN projector TEXT",
    """CREATE TABLE projector_state (
        school TEXT NOT NULL, device TEXT NOT NULL, address TEXT NOT NULL, reachable INTEGER NOT NULL,
        power TEXT, input TEXT, lamp_hours DOUBLE PRECISION, errors TEXT, error TEXT,
        t DOUBLE PRECISION NOT NULL, received DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (school, device))""",
]
