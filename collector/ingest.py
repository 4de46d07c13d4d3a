"""Turning raw MQTT messages into validated, store-ready records (pure functions, no I/O)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import protocol

HEAD_BYTES = 256


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
        return (self.msg.received, self.msg.topic[:512], self.code, self.reason[:1000],
                len(self.msg.payload), head)


def _event_row(school: str, device: str, ev: dict[str, Any], now: datetime) -> EventRow:
    when: datetime = ev["_t"]
    data = ev["data"]
    return EventRow(school, device, ev["id"], ev["seq"], ev["type"], ev["ts"], when.timestamp(),
                    data, protocol.is_future(when, now))


def prepare(msg: Incoming) -> Prepared:
    """Validate one message against the contract; never raises."""
    now = datetime.fromtimestamp(msg.received, UTC)
    try:
        topic = protocol.parse_topic(msg.topic)
        if topic.kind == "events":
            assert topic.device is not None
            events = protocol.decode_events(msg.payload, topic.device)
            rows = [_event_row(topic.school, topic.device, ev, now) for ev in events]
            return Prepared("events", msg, topic.school, topic.device, events=rows)
        if topic.kind == "status":
            status = protocol.decode_status(msg.payload)
            return Prepared("status", msg, topic.school, topic.device or "", status=status)
        if topic.kind == "cmd/ack":
            ack = protocol.decode_ack(msg.payload)
            return Prepared("ack", msg, topic.school, topic.device or "", status=ack)
        raise protocol.Rejected("bad_topic", f"the collector does not take messages on {topic.kind!r} topics")
    except protocol.Rejected as r:
        return Prepared("rejected", msg, code=r.code, reason=r.message)
    except Exception as e:  # a bug must not stop ingest: quarantine with the reason
        return Prepared("rejected", msg, code="internal", reason=f"{type(e).__name__}: {e}")


def data_json(row: EventRow) -> str:
    return json.dumps(row.data, ensure_ascii=False, separators=(",", ":"))
