"""Closed by default (docs/security.md): enrolment secrets, per-PC MQTT credentials, the collector's
broker account and each school's command-signing key."""

VERSION = 600
NAME = "enrolment"
STATEMENTS = [
    # one enrolment secret per school (shown to admins, so kept as it is; rotated by replacing it)
    """CREATE TABLE enrol_secrets (
        school TEXT PRIMARY KEY, secret TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
        expires DOUBLE PRECISION NOT NULL, created_by TEXT)""",
    # a device's MQTT account: username = device id (protocol.md §1), argon2 hash of its password
    """CREATE TABLE device_credentials (
        device TEXT PRIMARY KEY, school TEXT NOT NULL, secret_hash TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, revoked DOUBLE PRECISION, revoked_by TEXT, ip TEXT)""",
    "CREATE INDEX device_credentials_school ON device_credentials (school)",
    # service accounts of the embedded broker (the collector's); the password is needed to connect
    """CREATE TABLE broker_accounts (
        username TEXT PRIMARY KEY, secret TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)""",
    # each school's Ed25519 command-signing key (PKCS#8 PEM) and its public key (base64, raw)
    """CREATE TABLE school_keys (
        school TEXT PRIMARY KEY, private_pem TEXT NOT NULL, public_b64 TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
]
