"""Enrolment: the one way a PC joins (docs/security.md, docs/agent-install.md).

Each school has an enrolment secret (:func:`rotate` makes or replaces it; it expires). An agent
installed with that secret asks the server once (``POST /api/v1/enrol``) and receives its own MQTT
password, the school's command-signing public key (pinned from then on) and, where TLS is on, the CA.

The secret never travels: the request carries an HMAC of the request under it (``proof``), and the
answer carries an HMAC of the answer under it (``mac``), so someone on the network can neither learn
the secret from an enrolment nor hand the agent a key of their own.
"""
from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import protocol
from collector.audit import audit
from collector.db import Database, first
from collector.devices import school_keys
from collector.intake import credentials
from common.enrolwire import answer_text, mac, request_text
from common.errors import BbtError

DEFAULT_DAYS = 30.0


class EnrolError(BbtError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- the school's secret ---------------------------------------------------------------------------

def rotate(db: Database, school: str, who: str, days: float = DEFAULT_DAYS, now: float | None = None) -> dict[str, Any]:
    """Make a new enrolment secret for the school (the old one stops working at once)."""
    if not protocol.valid_id(school):
        raise EnrolError(400, f"school {school!r} must match {protocol.ID_PATTERN}")
    if not 0 < days <= 3650:
        raise EnrolError(400, "an enrolment secret is valid for more than 0 and at most 3650 days")
    now = time.time() if now is None else now
    secret = "bbt-" + secrets.token_urlsafe(24)
    with db.transaction():
        db.execute("INSERT INTO schools (school) VALUES (?) ON CONFLICT (school) DO NOTHING", (school,))
        db.execute("INSERT INTO enrol_secrets (school, secret, created, expires, created_by) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (school) DO UPDATE SET secret = excluded.secret, created = excluded.created, "
                   "expires = excluded.expires, created_by = excluded.created_by",
                   (school, secret, now, now + days * 86400, who))
        audit(db, "enrol.rotate", school, {"days": days}, who, now)
    school_keys.ensure(db, school)
    return current(db, school) or {}


def current(db: Database, school: str) -> dict[str, Any] | None:
    return first(db, "SELECT school, secret, created, expires, created_by FROM enrol_secrets WHERE school = ?",
                     (school,))


def _valid_secret(db: Database, school: str, now: float) -> str:
    row = current(db, school)
    if row is None:
        raise EnrolError(403, f"school {school!r} has no enrolment secret (bbt enrol-token --school {school})")
    if row["expires"] <= now:
        raise EnrolError(403, f"the enrolment secret of school {school!r} has expired; ask the administrator "
                              f"for a new one (bbt enrol-token --school {school} --rotate)")
    return str(row["secret"])


# -- an enrolment ----------------------------------------------------------------------------------

def _field(req: Any, name: str) -> str:
    value = req.get(name) if isinstance(req, dict) else None
    if not isinstance(value, str) or not value:
        raise EnrolError(400, f"enrolment request: {name!r} is missing or not a string")
    return value


def enrol(db: Database, req: Any, ip: str | None, ca_pem: str | None = None, now: float | None = None
          ) -> dict[str, Any]:
    """Check a request against the school's secret, make the PC's account, return the answer with its
    ``mac``. Every refusal is audited (``enrol.refused``) and raised as EnrolError."""
    now = time.time() if now is None else now
    try:
        return _enrol(db, req, ip, ca_pem, now)
    except EnrolError as e:
        target = "/".join(str(req.get(k))[:64] for k in ("school", "device")) if isinstance(req, dict) else "-"
        with db.transaction():
            audit(db, "enrol.refused", target, {"ip": ip, "reason": e.message[:300]}, "enrol", now)
        raise


def _enrol(db: Database, req: Any, ip: str | None, ca_pem: str | None, now: float) -> dict[str, Any]:
    school, device, nonce, proof = (_field(req, k) for k in ("school", "device", "nonce", "proof"))
    for name, value in (("school", school), ("device", device)):
        if not protocol.valid_id(value):
            raise EnrolError(400, f"{name} {value[:64]!r} must match {protocol.ID_PATTERN}")
    if not 16 <= len(nonce) <= 128:
        raise EnrolError(400, "enrolment request: 'nonce' must be 16 to 128 characters")
    secret = _valid_secret(db, school, now)
    if not hmac.compare_digest(mac(secret, request_text(school, device, nonce)).encode(), proof.encode()):
        raise EnrolError(403, f"wrong enrolment secret for school {school!r}")
    try:
        password = credentials.provision(db, school, device, "enrol", ip, now)
    except credentials.CredentialError as e:
        raise EnrolError(409, str(e)) from None
    answer: dict[str, Any] = {"school": school, "device": device, "nonce": nonce, "username": device,
                              "password": password, "command_key": school_keys.public_key(db, school),
                              "ca": ca_pem}
    answer["mac"] = mac(secret, answer_text(answer))
    return answer


def agent_ini(school: str, secret: str, broker_url: str, server_url: str) -> str:
    """The school's agent.ini (the same file for every PC: the device id is the host name), and the
    one command that runs an agent by hand (docs/agent-install.md)."""
    return (f"[agent]\nschool = {school}\nbroker = {broker_url}\nenrol_url = {server_url}\n"
            f"enrol_secret = {secret}\n")


def run_command(school: str, secret: str, broker_url: str, server_url: str) -> str:
    return (f"bbt agent run --broker {broker_url} --school {school} --enrol-url {server_url} "
            f"--enrol-secret {secret}")


class FailureLimit:
    """At most ``limit`` refused enrolments per client address in ``window_s`` (then HTTP 429)."""

    def __init__(self, limit: int = 20, window_s: float = 600.0) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, list[float]] = {}

    def blocked(self, ip: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        recent = [t for t in self._seen.get(ip, []) if t > now - self.window_s]
        self._seen[ip] = recent
        return len(recent) >= self.limit

    def failed(self, ip: str, now: float | None = None) -> None:
        self._seen.setdefault(ip, []).append(time.time() if now is None else now)
        if len(self._seen) > 10000:  # bounded memory: forget the oldest addresses
            for k in list(self._seen)[:5000]:
                del self._seen[k]
