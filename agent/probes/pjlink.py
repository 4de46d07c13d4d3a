"""PJLink class 1 (JBMIA), the LAN protocol of most classroom projectors and panels: TCP 4352.

The projector greets with ``PJLINK 0`` (no password) or ``PJLINK 1 <random>`` (password): then the
first command carries MD5(random + password) as 32 lower-case hex digits in front of it. A wrong
password is answered ``PJLINK ERRA``. Commands are ``%1CMND param\\r``, answers ``%1CMND=value\\r``
(``ERR1``-``ERR4``: unknown command, bad parameter, not now, projector failure).

Pure parsing functions plus :func:`query` (one short connection, a few queries). Stdlib only,
Python 3.8+ (the agent).
"""
from __future__ import annotations

import hashlib
import socket
from typing import Any, Dict, Optional, Tuple

PORT = 4352
POWER = {"0": "off", "1": "on", "2": "cooling", "3": "warming"}
ERST_PARTS = ("fan", "lamp", "temperature", "cover", "filter", "other")
ERST_LEVEL = {"0": "ok", "1": "warning", "2": "error"}
INPUT_KINDS = {"1": "RGB", "2": "VIDEO", "3": "DIGITAL", "4": "STORAGE", "5": "NETWORK"}
ERRORS = {"ERR1": "undefined command", "ERR2": "out of parameter", "ERR3": "unavailable time",
          "ERR4": "projector failure"}


class PJLinkError(Exception):
    pass


class AuthError(PJLinkError):
    pass


def parse_address(address: str) -> Tuple[str, int]:
    """``host`` or ``host:port`` (an IPv6 host in brackets: ``[fe80::1]:4352``)."""
    a = address.strip()
    if not a:
        raise ValueError("empty projector address")
    if a.startswith("["):
        host, _, rest = a[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else PORT
    if a.count(":") == 1:
        host, port = a.split(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("projector address %r: the port must be a number 1-65535" % address)
        return host, int(port)
    return a, PORT


def auth_digest(random: str, password: str) -> str:
    """PJLink authentication: MD5 of the projector's random number followed by the password."""
    return hashlib.md5((random + password).encode("utf-8")).hexdigest()


def parse_greeting(line: str) -> Optional[str]:
    """The random number to hash, or None when the projector asks for no password."""
    parts = line.strip().split()
    if len(parts) >= 2 and parts[0] == "PJLINK":
        if parts[1] == "0":
            return None
        if parts[1] == "1" and len(parts) == 3:
            return parts[2]
        if parts[1] == "ERRA":
            raise AuthError("projector refused the password")
    raise PJLinkError("not a PJLink greeting: %r" % line[:40])


def parse_answer(line: str, command: str) -> str:
    """The value of ``%1CMND=value``; PJLinkError for ERR1-4 or a garbled answer."""
    line = line.strip()
    if line.startswith("PJLINK ERRA"):
        raise AuthError("projector refused the password")
    head = "%1" + command + "="
    if not line.upper().startswith(head):
        raise PJLinkError("unexpected answer to %s: %r" % (command, line[:40]))
    value = line[len(head):]
    if value.upper() in ERRORS:
        raise PJLinkError("%s: %s" % (command, ERRORS[value.upper()]))
    return value


def parse_lamp(value: str) -> Optional[int]:
    """Hours of the first lamp from ``"1234 1 567 0"`` (hours, on/off per lamp)."""
    parts = value.split()
    return int(parts[0]) if parts and parts[0].isdigit() else None


def parse_erst(value: str) -> Dict[str, str]:
    """Six digits (fan, lamp, temperature, cover, filter, other) -> the parts not "ok"."""
    if len(value) != 6 or not value.isdigit():
        raise PJLinkError("ERST answer %r is not six digits" % value)
    return {part: ERST_LEVEL.get(value[i], "error") for i, part in enumerate(ERST_PARTS) if value[i] != "0"}


def parse_input(value: str) -> str:
    """``31`` -> ``DIGITAL 1``."""
    if len(value) == 2 and value[0] in INPUT_KINDS:
        return "%s %s" % (INPUT_KINDS[value[0]], value[1])
    return value


class Session:
    """One connection: the greeting read, the digest sent in front of the first command."""

    def __init__(self, address: str, password: str = "", timeout: float = 3.0) -> None:
        host, port = parse_address(address)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.prefix = ""
        random = parse_greeting(self._line())
        if random is not None:
            if not password:
                self.close()
                raise AuthError("projector asks for a password (projector_password in agent.ini)")
            self.prefix = auth_digest(random, password)

    def _line(self) -> str:
        raw = b""
        while not raw.endswith(b"\r"):
            c = self.file.read(1)
            if not c:
                raise PJLinkError("projector closed the connection")
            raw += c
            if len(raw) > 200:
                raise PJLinkError("answer too long")
        return raw.decode("ascii", "replace")

    def ask(self, command: str, param: str = "?") -> str:
        self.sock.sendall(("%s%%1%s %s\r" % (self.prefix, command, param)).encode("ascii"))
        self.prefix = ""
        return parse_answer(self._line(), command)

    def close(self) -> None:
        for c in (self.file, self.sock):
            try:
                c.close()
            except OSError:
                pass


def query(address: str, password: str = "", timeout: float = 3.0) -> Dict[str, Any]:
    """Power, input, lamp hours and error status; ``reachable`` False with ``error`` when it cannot."""
    out: Dict[str, Any] = {"address": address, "reachable": False}
    try:
        s = Session(address, password, timeout)
    except (OSError, ValueError, PJLinkError) as e:
        out["error"] = str(e) or type(e).__name__
        return out
    try:
        out["reachable"] = True
        out["power"] = POWER.get(s.ask("POWR"), "unknown")
        for key, cmd, parse in (("input", "INPT", parse_input), ("lamp_hours", "LAMP", parse_lamp),
                                ("errors", "ERST", parse_erst)):
            try:  # off or warming, a projector may answer ERR3 to these
                value = parse(s.ask(cmd))  # type: ignore[operator]
                if value is not None:
                    out[key] = value
            except PJLinkError as e:
                if isinstance(e, AuthError):
                    raise
    except (OSError, PJLinkError) as e:  # reachable: it answered, but not (a wrong password: ERRA)
        out["error"] = str(e) or type(e).__name__
    finally:
        s.close()
    return out


def power_off(address: str, password: str = "", timeout: float = 3.0) -> None:
    """Switch the projector off (``POWR 0``); PJLinkError/OSError when it cannot."""
    s = Session(address, password, timeout)
    try:
        answer = s.ask("POWR", "0")
        if answer.upper() != "OK":
            raise PJLinkError("POWR 0 answered %r" % answer)
    finally:
        s.close()
