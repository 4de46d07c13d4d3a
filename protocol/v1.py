"""The bbt wire protocol, version 1 (docs/protocol.md §1): the external contract 1.1 and the project's additions.

Stdlib only, Python 3.8+: both the classroom agent and the collector import it.
Every rejection raises :class:`Rejected` with a short machine code and a sentence
that names what is wrong.

Project protocol versions (``WIRE_VERSION``; the topics stay ``bbt/v1``):

- 1.1: the external contract 1.1, §1 as written (docs/protocol.md §6 lists what bbt adds).
- 1.2: the event type ``protection`` (antivirus and patch state, fields in ``_SPECS`` and
  docs/agent-data-sheet.md); ``usb`` events may carry ``vendor_id`` and ``product_id`` (4 hex
  digits each, extra keys an older collector keeps and ignores); the policy key ``usb``
  (``allow_labels``, ``allow_ids``, ``block``: an older agent ignores it, as protocol.md §1
  says of unknown policy keys). A collector of 1.1 quarantines a ``protection`` event as an
  unknown type: a 1.2 agent therefore never puts one in a batch with other events
  (``ISOLATED_TYPES``), so nothing else is lost with it (its seq shows as a gap there).
- 1.3: the event type ``projector`` (a classroom projector or panel polled over PJLink by the
  classroom's agent) and the policy keys ``projectors`` and ``projector_off_with_pc``; isolated
  like ``protection``.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from protocol.programs import UnsafeRule, unsafe_deny_rules
from protocol.usb import DEFAULT_USB, USB_ID_RE, normalized_usb, usb_allowed, usb_policy_problem  # noqa: F401

VERSION = "v1"
WIRE_VERSION = "1.3"
MINOR = int(WIRE_VERSION.split(".")[1])
# types an older collector does not know: sent alone, never batched with other events
ISOLATED_TYPES = ("protection", "projector")
PREFIX = "bbt/v1"
ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_ID_RE = re.compile(r"\A" + ID_PATTERN + r"\Z")
MAX_PAYLOAD = 64 * 1024
MAX_BATCH = 500
FUTURE_TOLERANCE = timedelta(minutes=5)

STATUS_REASONS = ("startup", "shutdown", "lost")
SEVERITIES = ("info", "warning", "critical")


class Rejected(ValueError):
    """A message that breaks the contract. ``code`` is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message


class UnsafePolicy(Rejected):
    """A policy whose deny rules would hit system programs or every program (``problems`` names them)."""

    def __init__(self, problems: List[UnsafeRule]) -> None:
        super().__init__("unsafe_policy", "; ".join(p.describe() for p in problems) + " (refused: it could stop "
                         "the PC's system or desktop; name the programs to deny, e.g. \"qq.exe\")")
        self.problems = problems


class Topic(NamedTuple):
    school: str
    device: Optional[str]
    kind: str  # status | events | cmd | cmd/ack | policy


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID_RE.match(value))


def _check_id(what: str, value: str) -> str:
    if not valid_id(value):
        raise ValueError("%s %r must match %s" % (what, value, ID_PATTERN))
    return value


def status_topic(school: str, device: str) -> str:
    return "%s/%s/%s/status" % (PREFIX, _check_id("school", school), _check_id("device", device))


def events_topic(school: str, device: str) -> str:
    return "%s/%s/%s/events" % (PREFIX, _check_id("school", school), _check_id("device", device))


def cmd_topic(school: str, device: str) -> str:
    return "%s/%s/%s/cmd" % (PREFIX, _check_id("school", school), _check_id("device", device))


def ack_topic(school: str, device: str) -> str:
    return cmd_topic(school, device) + "/ack"


def policy_topic(school: str) -> str:
    return "%s/%s/policy" % (PREFIX, _check_id("school", school))


@functools.lru_cache(maxsize=16384)  # a school's devices use a few topics each, over and over
def parse_topic(topic: str) -> Topic:
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "bbt" or parts[1] != VERSION:
        raise Rejected("bad_topic", "topic %r is not under %s/" % (topic[:200], PREFIX))
    school = parts[2]
    if not valid_id(school):
        raise Rejected("bad_topic", "school %r in topic must match %s" % (school[:80], ID_PATTERN))
    if len(parts) == 4 and parts[3] == "policy":
        return Topic(school, None, "policy")
    device = parts[3]
    if not valid_id(device):
        raise Rejected("bad_topic", "device %r in topic must match %s" % (device[:80], ID_PATTERN))
    kind = "/".join(parts[4:])
    if kind not in ("status", "events", "cmd", "cmd/ack"):
        raise Rejected("bad_topic", "topic %r has unknown kind %r" % (topic[:200], kind[:40]))
    return Topic(school, device, kind)


# -- time --------------------------------------------------------------------

_TIME_RE = re.compile(
    r"\A(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z"
)


def parse_time(value: object, field: str = "ts") -> datetime:
    """Parse an RFC 3339 time that carries an offset; raise Rejected otherwise."""
    if not isinstance(value, str):
        raise Rejected("bad_field", "%s must be an RFC 3339 time string, got %s" % (field, _typename(value)))
    m = _TIME_RE.match(value)
    if not m:
        raise Rejected("bad_field", "%s %r is not an RFC 3339 time with an offset" % (field, value[:40]))
    try:  # the C parser: for what the pattern lets through it gives what _time_of gives, or fails
        return datetime.fromisoformat(value)  # (tests/test_protocol.py compares the two on every shape)
    except ValueError:
        return _time_of(m, value, field)


def _time_of(m: "re.Match[str]", value: str, field: str) -> datetime:
    """The time the groups of a ``_TIME_RE`` match spell (a leap second counts as :59), or Rejected."""
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    if z:
        tz = timezone.utc
    else:
        delta = timedelta(hours=int(oh), minutes=int(om))
        if delta >= timedelta(hours=24):
            raise Rejected("bad_field", "%s %r has an impossible offset" % (field, value))
        tz = timezone(delta if sign == "+" else -delta)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        return datetime(int(y), int(mo), int(d), int(h), int(mi), min(int(s), 59), micro, tzinfo=tz)
    except ValueError:
        raise Rejected("bad_field", "%s %r is not a real date and time" % (field, value)) from None


def format_time(dt: datetime) -> str:
    """RFC 3339 with offset, seconds precision (milliseconds when present)."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    if dt.microsecond:
        return dt.isoformat(timespec="milliseconds")
    return dt.isoformat(timespec="seconds")


# -- events ------------------------------------------------------------------

_NUM = (int, float)
_HEX4 = re.compile(r"\A[0-9a-fA-F]{4}\Z")
# type -> (required keys, {key: (python types, description)}, enums)
_SPECS: Dict[str, Tuple[Tuple[str, ...], Dict[str, Tuple[Any, str]], Dict[str, Tuple[str, ...]]]] = {
    "power": (("state",), {"state": (str, "string"), "boot_time": ("time", "time"), "clean": (bool, "bool")},
              {"state": ("on", "off", "sleep", "wake")}),
    "session": (("state", "session_id"),
                {"state": (str, "string"), "session_id": (str, "string"), "start": ("time", "time"),
                 "end": ("time", "time"), "active_s": (_NUM, "number")},
                {"state": ("start", "end")}),
    "heartbeat": (("in_use",), {"in_use": (bool, "bool"), "idle_s": (_NUM, "number"), "cpu_pct": (_NUM, "number"),
                                "mem_pct": (_NUM, "number"), "disk_pct": (_NUM, "number"),
                                "uptime_s": (_NUM, "number")}, {}),
    "software": (("action", "name"), {"action": (str, "string"), "name": (str, "string"), "exe": (str, "string"),
                                      "rule": (str, "string")}, {"action": ("detected", "blocked")}),
    "fault": (("code", "severity", "state"), {"code": (str, "string"), "severity": (str, "string"),
                                             "state": (str, "string")},
              {"severity": SEVERITIES, "state": ("raised", "cleared")}),
    "drift": (("field", "old", "new"), {"field": (str, "string")},
              {"field": ("hostname", "ip", "mac", "workgroup")}),
    "inventory": (("hostname",), {"hostname": (str, "string"), "os": (str, "string"), "ram_mb": (_NUM, "number"),
                                  "disks": (list, "array"), "displays": ((list, int), "array or number"),
                                  "software": (list, "array")}, {}),
    # v1.1 (docs/collector.md): a classroom projector/panel polled over PJLink by the classroom's agent
    "projector": (("address", "reachable"),
                  {"address": (str, "string"), "reachable": (bool, "bool"), "power": (str, "string"),
                   "input": (str, "string"), "lamp_hours": (_NUM, "number"), "errors": (dict, "object"),
                   "error": (str, "string")},
                  {"power": ("off", "on", "cooling", "warming", "unknown")}),
    "usb": (("action",), {"action": (str, "string"), "kind": (str, "string"), "label": (str, "string"),
                          "vendor_id": (str, "string"), "product_id": (str, "string")},
            {"action": ("inserted", "removed")}),
    # 1.2: antivirus and patch state (docs/agent-data-sheet.md)
    "protection": (("enabled",), {"enabled": (bool, "bool"), "products": (list, "array"),
                                  "signatures_t": ("time", "time"), "signature_age_d": (_NUM, "number"),
                                  "last_scan": ("time", "time"), "threats": (_NUM, "number"),
                                  "threat_names": (list, "array"), "last_update": ("time", "time"),
                                  "pending_security": (_NUM, "number"), "pending_since": ("time", "time"),
                                  "scanner": (str, "string")}, {}),
}
EVENT_TYPES = tuple(sorted(_SPECS))


def _typename(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _checks(etype: str) -> Tuple[Tuple[str, ...], Tuple[Tuple[str, int, Any, str, Optional[Tuple[str, ...]]], ...]]:
    """A type's spec as _check_data walks it: required keys, then (key, kind, python types, description,
    allowed values or None) with kind 0 a time, 1 a bool, 2 anything else (a bool is not a number)."""
    required, types, enums = _SPECS[etype]
    return required, tuple((key, 0 if pytype == "time" else 1 if pytype is bool else 2, pytype, desc, enums.get(key))
                           for key, (pytype, desc) in types.items())


_CHECKS = {etype: _checks(etype) for etype in _SPECS}
_ABSENT = object()


def _check_data(etype: str, data: Dict[str, Any]) -> None:
    required, checks = _CHECKS[etype]
    for key in required:
        if key not in data:
            raise Rejected("bad_field", "%s event data lacks required key %r" % (etype, key))
    for key, kind, pytype, desc, allowed in checks:
        value = data.get(key, _ABSENT)
        if value is _ABSENT:
            continue
        if kind == 0:
            parse_time(value, "data.%s" % key)
            continue
        if not (isinstance(value, bool) if kind == 1 else isinstance(value, pytype) and not isinstance(value, bool)):
            raise Rejected("bad_field", "%s data.%s must be %s, got %s" % (etype, key, desc, _typename(value)))
        if allowed is not None and value not in allowed:
            raise Rejected("bad_field", "%s data.%s %r is not one of %s" % (etype, key, value, "/".join(allowed)))
    if etype == "usb":
        for key in ("vendor_id", "product_id"):
            if key in data and not _HEX4.match(data[key]):
                raise Rejected("bad_field", "usb data.%s %r must be 4 hex digits" % (key, data[key][:20]))
    if etype == "session" and data["state"] == "end":
        for key in ("start", "end", "active_s"):
            if key not in data:
                raise Rejected("bad_field", "session end lacks required key %r" % key)


def validate_event(obj: object, device: Optional[str] = None) -> Dict[str, Any]:
    """Check one event object; return it with ``_t`` (aware datetime of ts) added."""
    if not isinstance(obj, dict):
        raise Rejected("bad_event", "an event must be a JSON object, got %s" % _typename(obj))
    eid = obj.get("id")
    if not isinstance(eid, str) or not 1 <= len(eid) <= 64:
        raise Rejected("bad_field", "id must be a string of 1-64 characters, got %s" % _typename(eid))
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise Rejected("bad_field", "seq must be an integer >= 0, got %r" % (seq,))
    etype = obj.get("type")
    if not isinstance(etype, str) or etype not in _SPECS:
        raise Rejected("unknown_type", "type %r is not one of %s" % (etype, ", ".join(EVENT_TYPES)))
    when = parse_time(obj.get("ts"), "ts")
    data = obj.get("data")
    if not isinstance(data, dict):
        raise Rejected("bad_field", "data must be an object, got %s" % _typename(data))
    if "device" in obj and obj["device"] != device:
        raise Rejected("device_mismatch", "device %r in payload differs from topic device %r"
                       % (obj["device"], device))
    _check_data(etype, data)
    out = dict(obj)
    out["_t"] = when
    return out


def decode_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", "payload is %d bytes, the limit is %d" % (len(payload), MAX_PAYLOAD))
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Rejected("not_utf8", "payload is not UTF-8 (byte %d)" % e.start) from None
    try:  # json.loads without its whitespace scans when the text is one JSON value, end to end
        obj, end = _RAW_DECODE(text)
        if end == len(text):
            return obj
    except ValueError:
        pass
    try:  # anything else (whitespace around, extra data, not JSON): json.loads's own answer and message
        return json.loads(text)
    except ValueError as e:
        raise Rejected("not_json", "payload is not JSON: %s" % e) from None


_RAW_DECODE = json.JSONDecoder().raw_decode


def decode_events(payload: bytes, device: str) -> List[Dict[str, Any]]:
    """Decode an events message: one event object or an array of 1-500."""
    obj = decode_json(payload)
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise Rejected("bad_batch", "an event array must hold 1 to %d events, got 0" % MAX_BATCH)
    if len(items) > MAX_BATCH:
        raise Rejected("bad_batch", "an event array must hold 1 to %d events, got %d" % (MAX_BATCH, len(items)))
    if len(items) == 1:
        return [validate_event(items[0], device)]
    out = []
    for i, item in enumerate(items):
        try:
            out.append(validate_event(item, device))
        except Rejected as r:
            raise Rejected(r.code, "event %d of %d: %s" % (i + 1, len(items), r.message)) from None
    return out


def decode_status(payload: bytes) -> Dict[str, Any]:
    obj = decode_json(payload)
    if not isinstance(obj, dict):
        raise Rejected("bad_status", "status must be a JSON object, got %s" % _typename(obj))
    if not isinstance(obj.get("online"), bool):
        raise Rejected("bad_field", "status.online must be a bool, got %s" % _typename(obj.get("online")))
    reason = obj.get("reason")
    if reason is not None and reason not in STATUS_REASONS:
        raise Rejected("bad_field", "status.reason %r is not one of %s" % (reason, "/".join(STATUS_REASONS)))
    if "ts" in obj:
        obj["_t"] = parse_time(obj["ts"], "status.ts")
    for key in ("boot_id", "agent"):
        if key in obj and not isinstance(obj[key], str):
            raise Rejected("bad_field", "status.%s must be a string, got %s" % (key, _typename(obj[key])))
    return obj


def decode_ack(payload: bytes) -> Dict[str, Any]:
    obj = decode_json(payload)
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        raise Rejected("bad_ack", "an ack must be an object with a string id")
    if not isinstance(obj.get("ok"), bool):
        raise Rejected("bad_ack", "ack.ok must be a bool")
    if "error" in obj and obj["error"] is not None and not isinstance(obj["error"], str):
        raise Rejected("bad_ack", "ack.error must be a string")
    return obj


# -- builders ----------------------------------------------------------------

def make_event(event_id: str, seq: int, etype: str, ts: datetime, data: Dict[str, Any],
               device: Optional[str] = None) -> Dict[str, Any]:
    ev: Dict[str, Any] = {"id": event_id, "seq": seq, "type": etype, "ts": format_time(ts), "data": data}
    if device is not None:
        ev["device"] = device
    return ev


def make_status(online: bool, reason: str, ts: datetime, boot_id: str, agent: str) -> Dict[str, Any]:
    return {"online": online, "ts": format_time(ts), "reason": reason, "boot_id": boot_id, "agent": agent}


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # made once: json.dumps with options
# builds a new encoder on every call


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


DEFAULT_POLICY: Dict[str, Any] = {
    "software": {"deny": [], "allow": [], "action": "report"},
    "teaching_apps": [],
    "idle_minutes": 5,
    "shutdown_after": None,
    "heartbeat_s": 60,
}

_HHMM = re.compile(r"\A([01]\d|2[0-3]):[0-5]\d\Z")


def validate_policy(obj: object) -> Dict[str, Any]:
    """Check a policy object; unknown keys are kept and ignored. Returns it merged over defaults."""
    if not isinstance(obj, dict):
        raise Rejected("bad_policy", "policy must be a JSON object, got %s" % _typename(obj))
    sw = obj.get("software", {})
    if not isinstance(sw, dict):
        raise Rejected("bad_policy", "policy.software must be an object")
    for key in ("deny", "allow"):
        globs = sw.get(key, [])
        if not isinstance(globs, list) or not all(isinstance(g, str) and g for g in globs):
            raise Rejected("bad_policy", "policy.software.%s must be a list of non-empty glob strings" % key)
    unsafe = unsafe_deny_rules(sw.get("deny", []))
    if unsafe:
        raise UnsafePolicy(unsafe)
    if sw.get("action", "report") not in ("report", "block"):
        raise Rejected("bad_policy", "policy.software.action must be report or block")
    apps = obj.get("teaching_apps", [])
    if not isinstance(apps, list) or not all(isinstance(g, str) and g for g in apps):
        raise Rejected("bad_policy", "policy.teaching_apps must be a list of glob strings")
    for key, lo in (("idle_minutes", 1), ("heartbeat_s", 5)):
        v = obj.get(key, DEFAULT_POLICY[key])
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < lo:
            raise Rejected("bad_policy", "policy.%s must be a number >= %d" % (key, lo))
    sa = obj.get("shutdown_after")
    if sa is not None and not (isinstance(sa, str) and _HHMM.match(sa)):
        raise Rejected("bad_policy", "policy.shutdown_after must be HH:MM or null, got %r" % (sa,))
    usb = validate_usb_policy(obj.get("usb", {}))
    merged = dict(DEFAULT_POLICY)
    merged.update(obj)
    merged["software"] = dict(DEFAULT_POLICY["software"], **sw)
    if "usb" in obj:
        merged["usb"] = usb
    return merged


def validate_usb_policy(usb: object) -> Dict[str, Any]:
    """Check policy.usb (1.2); return it merged over :data:`DEFAULT_USB`, ids in lower case."""
    problem = usb_policy_problem(usb)
    if problem or not isinstance(usb, dict):
        raise Rejected("bad_policy", problem or "policy.usb must be an object")
    return normalized_usb(usb)


def is_future(when: datetime, now: datetime) -> bool:
    return when - now > FUTURE_TOLERANCE


# -- commands (docs/commands.md) ---------------------------------------------

COMMAND_KINDS = ("shutdown", "message", "refresh_inventory", "cancel_shutdown", "wake")
MAX_MESSAGE_TEXT = 500
MAX_WAKE_MACS = 64
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def _check_int_arg(kind: str, args: Dict[str, Any], key: str, lo: int) -> None:
    if key in args:
        v = args[key]
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise Rejected("bad_command", "%s args.%s must be an integer >= %d, got %r" % (kind, key, lo, v))


def validate_command_args(kind: str, args: object) -> Dict[str, Any]:
    """Check a command's args for its kind; return them."""
    if kind not in COMMAND_KINDS:
        raise Rejected("bad_command", "command kind %r is not one of %s" % (kind, ", ".join(COMMAND_KINDS)))
    if not isinstance(args, dict):
        raise Rejected("bad_command", "command args must be an object, got %s" % _typename(args))
    text = args.get("text")
    if kind == "message" and text is None:
        raise Rejected("bad_command", "a message command needs args.text")
    if text is not None and not (isinstance(text, str) and 1 <= len(text) <= MAX_MESSAGE_TEXT):
        raise Rejected("bad_command", "args.text must be a string of 1-%d characters" % MAX_MESSAGE_TEXT)
    _check_int_arg(kind, args, "delay_s", 0)
    _check_int_arg(kind, args, "in_use_delay_s", 0)
    _check_int_arg(kind, args, "duration_s", 1)
    if kind == "wake":
        _check_wake_args(args)
    return args


def _check_wake_args(args: Dict[str, Any]) -> None:
    """``wake``: ``macs`` (1-64 lower-case aa:bb:cc:dd:ee:ff), ``broadcast`` (IPv4), ``port`` (1-65535)."""
    macs = args.get("macs")
    if not isinstance(macs, list) or not 1 <= len(macs) <= MAX_WAKE_MACS:
        raise Rejected("bad_command", "wake args.macs must be a list of 1-%d MAC addresses" % MAX_WAKE_MACS)
    for mac in macs:
        if not isinstance(mac, str) or not MAC_PATTERN.match(mac):
            raise Rejected("bad_command", "wake args.macs: %r is not a MAC address like aa:bb:cc:dd:ee:ff" % (mac,))
    bcast = args.get("broadcast")
    try:
        ipaddress.IPv4Address(bcast)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        raise Rejected("bad_command", "wake args.broadcast must be an IPv4 address, got %r" % (bcast,)) from None
    _check_int_arg(kind="wake", args=args, key="port", lo=1)
    if int(args.get("port", 9)) > 65535:
        raise Rejected("bad_command", "wake args.port must be at most 65535")


def validate_command(obj: object) -> Dict[str, Any]:
    """Check a command object; return it with ``_issued`` and ``_expires`` (aware datetimes) added."""
    if not isinstance(obj, dict):
        raise Rejected("bad_command", "a command must be a JSON object, got %s" % _typename(obj))
    if not valid_id(obj.get("id")):
        raise Rejected("bad_command", "command id must match %s" % ID_PATTERN)
    kind = obj.get("kind")
    if not isinstance(kind, str):
        raise Rejected("bad_command", "command kind must be a string, got %s" % _typename(kind))
    validate_command_args(kind, obj.get("args", {}))
    try:
        issued = parse_time(obj.get("issued"), "issued")
        expires = parse_time(obj.get("expires"), "expires")
    except Rejected as r:
        raise Rejected("bad_command", r.message) from None
    if expires <= issued:
        raise Rejected("bad_command", "command expires before it is issued")
    out = dict(obj)
    out.setdefault("args", {})
    out["_issued"] = issued
    out["_expires"] = expires
    return out


def decode_command(payload: bytes) -> Dict[str, Any]:
    return validate_command(decode_json(payload))


def make_command(command_id: str, kind: str, args: Dict[str, Any], issued: datetime,
                 expires: datetime) -> Dict[str, Any]:
    cmd = {"id": command_id, "kind": kind, "args": args, "issued": format_time(issued),
           "expires": format_time(expires)}
    validate_command(cmd)
    return cmd


def command_expired(cmd: Dict[str, Any], now: datetime) -> bool:
    """True when a validated command must no longer be executed."""
    return now >= cmd["_expires"]
