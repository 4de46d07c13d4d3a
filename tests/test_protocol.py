"""The wire contract module: topics, events, status, policy — every rejection names its reason."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import protocol
from protocol import Rejected


def ev(**over):  # type: ignore[no-untyped-def]
    base = {"id": "e1", "seq": 0, "type": "heartbeat", "ts": "2026-11-23T08:05:00+08:00",
            "data": {"in_use": True, "idle_s": 3, "cpu_pct": 5.5, "mem_pct": 40, "disk_pct": 50, "uptime_s": 100}}
    base.update(over)
    return base


def enc(obj) -> bytes:  # type: ignore[no-untyped-def]
    return json.dumps(obj).encode()


def test_topics_round_trip() -> None:
    t = protocol.events_topic("sch-1", "pc_01")
    assert t == "bbt/v1/sch-1/pc_01/events"
    assert protocol.parse_topic(t) == protocol.Topic("sch-1", "pc_01", "events")
    assert protocol.parse_topic("bbt/v1/s/d/cmd/ack").kind == "cmd/ack"
    assert protocol.parse_topic("bbt/v1/s/policy") == protocol.Topic("s", None, "policy")
    with pytest.raises(ValueError):
        protocol.status_topic("bad school", "d")


@pytest.mark.parametrize("topic", ["bbt/v2/s/d/events", "bbt/v1/s d/d/events", "bbt/v1/s/" + "x" * 65 + "/events",
                                   "bbt/v1/s/d/other", "foo"])
def test_bad_topics_rejected(topic: str) -> None:
    with pytest.raises(Rejected) as e:
        protocol.parse_topic(topic)
    assert e.value.code == "bad_topic"


def test_single_and_batch_events_accepted() -> None:
    [one] = protocol.decode_events(enc(ev()), "pc1")
    assert one["_t"] == datetime(2026, 11, 23, 0, 5, tzinfo=UTC)
    many = protocol.decode_events(enc([ev(id=str(i), seq=i, data={"in_use": True}) for i in range(500)]), "pc1")
    assert [e["seq"] for e in many] == list(range(500))


@pytest.mark.parametrize("payload,code,needle", [
    (b"\xff\xfe", "not_utf8", "UTF-8"),
    (b"{not json", "not_json", "not JSON"),
    (enc([]), "bad_batch", "got 0"),
    (enc([ev(id=str(i), data={}) for i in range(501)]), "bad_batch", "got 501"),
    (enc(ev(type="telepathy")), "unknown_type", "telepathy"),
    (enc(ev(seq=-1)), "bad_field", "seq"),
    (enc(ev(seq=True)), "bad_field", "seq"),
    (enc(ev(seq="3")), "bad_field", "seq"),
    (enc(ev(id="")), "bad_field", "id"),
    (enc(ev(id="x" * 65)), "bad_field", "id"),
    (enc(ev(ts="2026-11-23 08:05")), "bad_field", "ts"),
    (enc(ev(ts="2026-11-23T08:05:00")), "bad_field", "offset"),
    (enc(ev(ts="2026-02-30T08:05:00Z")), "bad_field", "real date"),
    (enc(ev(data=[])), "bad_field", "data must be an object"),
    (enc(ev(data={"in_use": "yes"})), "bad_field", "in_use"),
    (enc(ev(data={"in_use": True, "cpu_pct": True})), "bad_field", "cpu_pct"),
    (enc(ev(device="other")), "device_mismatch", "other"),
    (enc(ev(type="power", data={"state": "exploded"})), "bad_field", "state"),
    (enc(ev(type="session", data={"state": "end", "session_id": "s"})), "bad_field", "start"),
    (enc(ev(type="fault", data={"code": "x", "severity": "fatal", "state": "raised"})), "bad_field", "severity"),
    (enc(["not an object"]), "bad_event", "object"),
    (b"[" + b" " * (64 * 1024) + b"]", "too_large", "limit"),
])
def test_bad_events_rejected_with_reason(payload: bytes, code: str, needle: str) -> None:
    with pytest.raises(Rejected) as e:
        protocol.decode_events(payload, "pc1")
    assert e.value.code == code
    assert needle in e.value.message


def test_one_bad_event_rejects_the_whole_batch_and_says_which() -> None:
    with pytest.raises(Rejected) as e:
        protocol.decode_events(enc([ev(id="a"), ev(id="b", seq="x")]), "pc1")
    assert "event 2 of 2" in e.value.message


def test_extra_keys_kept_and_device_field_allowed_when_equal() -> None:
    [e] = protocol.decode_events(enc(ev(device="pc1", data={"in_use": False, "extra": 1})), "pc1")
    assert e["data"]["extra"] == 1


def test_time_parsing() -> None:
    t = protocol.parse_time("2026-11-23T08:05:00.123+08:00")
    assert t.utcoffset() == timedelta(hours=8) and t.microsecond == 123000
    assert protocol.parse_time("2026-11-23T00:05:00Z") == t.replace(microsecond=0)
    assert protocol.format_time(t) == "2026-11-23T08:05:00.123+08:00"
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert protocol.is_future(now + timedelta(minutes=6), now)
    assert not protocol.is_future(now + timedelta(minutes=4), now)


def shapes() -> list[str]:
    """Every shape the RFC 3339 pattern lets through, real and impossible dates, times, fractions, offsets."""
    out = []
    for date in ("2026-11-23", "2024-02-29", "2023-02-29", "0001-01-01", "0000-01-01", "9999-12-31", "2026-13-01",
                 "2026-04-31"):
        for sep in "Tt ":
            for hms in ("08:05:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00", "25:00:00"):
                for frac in ("", ".1", ".123", ".12345", ".123456", ".1234567", ".999999999"):
                    for off in ("Z", "z", "+08:00", "-00:00", "+23:59", "+24:00", "-24:00", "+05:30", "+00:60"):
                        out.append(f"{date}{sep}{hms}{frac}{off}")
    return out


def test_parse_time_fast_path_is_the_reference_parse_on_every_shape() -> None:
    """parse_time hands the pattern's matches to datetime.fromisoformat first (a C parser) and falls back to its
    own reading of the pattern's groups: the two must agree, to the offset and the error, on this Python."""
    from protocol.v1 import _TIME_RE, _time_of

    for value in shapes():
        m = _TIME_RE.match(value)
        assert m is not None, value
        try:
            expected: object = _time_of(m, value, "ts")
        except Rejected as r:
            expected = r.message
        try:
            got: object = protocol.parse_time(value)
        except Rejected as r:
            got = r.message
        assert got == expected, value
        if isinstance(got, datetime) and isinstance(expected, datetime):
            assert (got.isoformat(), got.tzname()) == (expected.isoformat(), expected.tzname()), value


def test_decode_json_answers_as_json_loads() -> None:
    """decode_json skips json.loads's whitespace scans for a bare value; whatever else comes, the answer (or the
    error's message) is json.loads's own."""
    for text in ('{"a":1}', ' {"a":1}', '{"a":1} ', '\n[1,2]\t', '{"a":1}{"b":2}', '{"a":1} x', "\ufeff{}", "",
                 "   ", "nul", '{"a":NaN}', '"s"', "1", "[1,", '{"a":1', "[]", "tru"):
        try:
            expected: object = json.loads(text)
        except ValueError as e:
            expected = f"payload is not JSON: {e}"
        try:
            got: object = protocol.decode_json(text.encode())
        except Rejected as r:
            got = r.message
        assert got == expected, text


def test_status_and_ack() -> None:
    s = protocol.decode_status(enc({"online": False, "reason": "lost"}))
    assert s["online"] is False
    with pytest.raises(Rejected):
        protocol.decode_status(enc({"online": "yes"}))
    with pytest.raises(Rejected):
        protocol.decode_status(enc({"online": True, "reason": "bored"}))
    assert protocol.decode_ack(enc({"id": "c1", "ok": True}))["ok"] is True
    with pytest.raises(Rejected):
        protocol.decode_ack(enc({"id": "c1"}))


def test_policy_validation() -> None:
    p = protocol.validate_policy({"software": {"deny": ["*game*"]}, "shutdown_after": "17:30", "x": 1})
    assert p["software"]["action"] == "report" and p["heartbeat_s"] == 60 and p["x"] == 1
    bad: object
    for bad in ({"software": {"deny": "x"}}, {"shutdown_after": "25:00"}, {"heartbeat_s": 0},
                {"software": {"action": "nuke"}}, []):
        with pytest.raises(Rejected):
            protocol.validate_policy(bad)
