"""Turning raw MQTT messages into validated, store-ready records (pure functions, no I/O)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Callable

import protocol

HEAD_BYTES = 256
MAX_SEQ = 2**63 - 1  # BIGINT


@dataclass
class Incoming:
    """One message as the MQTT callback saw it."""

    topic: str
    payload: bytes
    received: float
    mid: int = 0
    qos: int = 0
    retain: bool = False


@dataclass
class EventRow:
    school: str
    device: str
    id: str
    seq: int
    type: str
    ts: str
    t: float
    data: dict[str, Any]
    clock_fault: bool
    data_text: str = ""  # data as stored: JSON, ASCII-escaped (safe for any backend)
    received: float = 0.0


@dataclass
class Prepared:
    kind: str  # events | status | ack | rejected
    msg: Incoming
    school: str = ""
    device: str = ""
    events: list[EventRow] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    code: str = ""
    reason: str = ""

    def quarantine_row(self) -> tuple[float, str, str, str, int, str]:
        head = self.msg.payload[:HEAD_BYTES].decode("utf-8", errors="backslashreplace")
        return (self.msg.received, clean_text(self.msg.topic[:512]), clean_text(self.code[:64]),
                clean_text(self.reason[:1000]), len(self.msg.payload), clean_text(head))


def clean_text(s: str) -> str:
    """Text any backend stores: no lone surrogates, no NUL (PostgreSQL refuses it)."""
    return s.encode("utf-8", errors="backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _data_encoder() -> Callable[[Any], str]:
    """JSON, compact and ASCII-escaped, NaN refused: ``JSONEncoder.encode`` without its per-call set-up.

    ``encode`` builds the C encoder on every call; this builds it once, without the cycle check (what
    ``json.loads`` returns has no cycles). Where the C encoder is missing or differs, ``encode`` itself."""
    slow = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]

        c_encode = c_make_encoder(None, json.JSONEncoder().default, encode_basestring_ascii, None, ":", ",",
                                  False, False, False)
    except (ImportError, TypeError):
        return slow

    def encode(obj: Any) -> str:
        return "".join(c_encode(obj, 0))

    sample = {"a": [1, 1.5, -0.0, 1e300, "é\u2028\ud800", None, True, {}], "b": {"c": []}}
    try:
        same = encode(sample) == slow(sample)
    except Exception:
        same = False
    return encode if same else slow


_ENCODE = _data_encoder()


def _encodes(v: str) -> bool:
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_strings(obj: Any, what: str = "payload") -> None:
    """Reject NUL characters and lone surrogates anywhere (JSON allows them as escapes; stores do not)."""
    stack = [obj]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v or not (v.isascii() or _encodes(v)):
                raise protocol.Rejected("bad_field", f"{what} contains a NUL character or invalid Unicode")
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def _event_row(school: str, device: str, ev: dict[str, Any], now: datetime) -> EventRow:
    when: datetime = ev["_t"]
    data = ev["data"]
    if ev["seq"] > MAX_SEQ:
        raise protocol.Rejected("bad_field", f"seq {ev['seq']} is larger than {MAX_SEQ}")
    try:
        text = _ENCODE(data)
    except ValueError:
        raise protocol.Rejected("bad_field", "data contains NaN or Infinity, which JSON does not allow") from None
    return EventRow(school, device, ev["id"], ev["seq"], ev["type"], ev["ts"],
                    when.timestamp(), data, protocol.is_future(when, now), text, now.timestamp())


def prepare(msg: Incoming) -> Prepared:
    """Validate one message against the contract; never raises."""
    now = datetime.fromtimestamp(msg.received, UTC)
    try:
        topic = protocol.parse_topic(msg.topic)
        if topic.kind == "events":
            assert topic.device is not None
            events = protocol.decode_events(msg.payload, topic.device)
            if b"\\u" in msg.payload:  # only a \u escape can carry NUL or a lone surrogate into valid UTF-8 JSON
                check_strings(events)
            rows = [_event_row(topic.school, topic.device, ev, now) for ev in events]
            return Prepared("events", msg, topic.school, topic.device, events=rows)
        if topic.kind == "status":
            status = protocol.decode_status(msg.payload)
            check_strings(status)
            return Prepared("status", msg, topic.school, topic.device or "", status=status)
        if topic.kind == "cmd/ack":
            ack = protocol.decode_ack(msg.payload)
            check_strings(ack)
            return Prepared("ack", msg, topic.school, topic.device or "", status=ack)
        raise protocol.Rejected("bad_topic", f"the collector does not take messages on {topic.kind!r} topics")
    except protocol.Rejected as r:
        return Prepared("rejected", msg, code=r.code, reason=r.message)
    except RecursionError:
        return Prepared("rejected", msg, code="not_json", reason="payload nests JSON too deeply")
    except Exception as e:  # a bug must not stop ingest: quarantine with the reason
        return Prepared("rejected", msg, code="internal", reason=f"{type(e).__name__}: {e}")


def data_json(row: EventRow) -> str:
    return row.data_text or json.dumps(row.data, ensure_ascii=True, separators=(",", ":"))
