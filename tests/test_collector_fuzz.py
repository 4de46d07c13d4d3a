"""Ingest fuzzed with hypothesis: random and hostile topics and payloads. No exception escapes,
every message is either stored or quarantined, and the counters add up with the tables."""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.devices.ingest import Incoming, prepare
from collector.intake.service import Collector
from common.mqttconf import BrokerConfig

DEVICES = ["pc-1", "pc-2", "pc-3"]
_ids = itertools.count()

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20))
json_any = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                        max_leaves=12)
hostile_text = st.sampled_from(["'; DROP TABLE events; --", "\u0000", "\ud800", "\udfff x", "𝕭𝖇𝖙", "a" * 70,
                                "../../etc/passwd", "%s%n", "\u202e", "NaN", "班班通", ""])
times = st.sampled_from(["2026-11-23T08:05:00+08:00", "2026-11-23T00:05:00Z", "2999-01-01T00:00:00+00:00",
                         "1970-01-01T00:00:00Z", "2026-02-30T08:00:00+08:00", "2026-11-23 08:05:00", "٢٠٢٦-١١-٢٣"])

VALID_DATA: dict[str, dict[str, Any]] = {
    "heartbeat": {"in_use": True, "idle_s": 3, "cpu_pct": 1.5},
    "power": {"state": "on", "clean": False},
    "session": {"state": "start", "session_id": "s-1"},
    "software": {"action": "detected", "name": "minecraft.exe", "exe": "C:/x/minecraft.exe", "rule": "minecraft*"},
    "fault": {"code": "disk_full", "severity": "warning", "state": "raised", "detail": "C: 99%"},
    "drift": {"field": "ip", "old": "10.0.0.1", "new": "10.0.0.2"},
    "inventory": {"hostname": "T1", "os": "Windows 10", "software": [{"name": "WPS", "version": "11"}]},
    "usb": {"action": "inserted", "kind": "storage", "label": "U盘"},
}


@st.composite
def valid_event(draw: Any) -> dict[str, Any]:
    etype = draw(st.sampled_from(sorted(VALID_DATA)))
    return {"id": f"v-{next(_ids)}", "seq": draw(st.integers(0, 50)), "type": etype, "ts": draw(times.filter(
        lambda t: t[0] in "12" and "-02-30" not in t and " " not in t)), "data": dict(VALID_DATA[etype])}


@st.composite
def mutated_event(draw: Any) -> dict[str, Any]:
    ev = draw(valid_event())
    key = draw(st.sampled_from(["id", "seq", "type", "ts", "data", "device", "extra"]))
    ev[key] = draw(st.one_of(json_any, hostile_text, times))
    if draw(st.booleans()) and isinstance(ev["data"], dict):
        ev["data"][draw(st.one_of(st.text(max_size=6), hostile_text))] = draw(st.one_of(json_any, hostile_text))
    if draw(st.booleans()):
        ev["id"] = draw(st.sampled_from(["dup-1", "dup-2"]))  # repeats across the run: duplicates
    return ev


def encode(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=draw_ascii(obj)).encode("utf-8", errors="surrogatepass")


def draw_ascii(obj: Any) -> bool:
    return len(json.dumps(obj)) % 2 == 0  # both escaped and raw UTF-8 forms, deterministically


payloads = st.one_of(
    valid_event().map(encode),
    mutated_event().map(encode),
    st.lists(st.one_of(valid_event(), mutated_event()), min_size=0, max_size=6).map(encode),
    json_any.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.sampled_from([b"", b"[]", b"{", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000,
                     b"1e999", b"NaN", json.dumps([{"x": 1}] * 501).encode(), b"{}" + b" " * 70000]),
)
topics = st.one_of(
    st.sampled_from([f"bbt/v1/s1/{d}/{k}" for d in DEVICES for k in ("events", "status", "cmd/ack")]),
    st.sampled_from(["bbt/v1/s1/policy", "bbt/v1/s1/pc-1/cmd", "bbt/v2/s1/pc-1/events", "bbt/v1//pc-1/events",
                     "bbt/v1/s1/pc 1/events", "bbt/v1/s1/pc-1/events/x", "bbt/v1/" + "s" * 65 + "/pc-1/events",
                     "bbt/v1/s1/\u0000/events", "bbt/v1/s1/\ud800/events", "#", "bbt/v1/s1/+/events", ""]),
    st.text(max_size=60),
)
event_topics = st.sampled_from([f"bbt/v1/s1/{d}/events" for d in DEVICES])
good = st.tuples(event_topics, st.one_of(valid_event().map(encode),
                                         st.lists(valid_event(), min_size=1, max_size=5).map(encode)))
messages = st.lists(st.one_of(good, st.tuples(event_topics, payloads), st.tuples(topics, payloads)),
                    min_size=1, max_size=12)


def status_payload(online: bool) -> bytes:
    return json.dumps({"online": online, "ts": "2026-11-23T08:05:00+08:00", "reason": "startup", "boot_id": "b",
                       "agent": "1.0"}).encode()


def totals(col: Collector) -> dict[str, int]:
    q = col.db.query
    counters = {r["name"]: int(r["value"]) for r in q("SELECT name, value FROM counters")}
    return {"stored": counters["stored"], "duplicates": counters["duplicates"], "rejected": counters["rejected"],
            "events": q("SELECT COUNT(*) AS n FROM events")[0]["n"],
            "quarantine": q("SELECT COUNT(*) AS n FROM quarantine")[0]["n"]}


def test_fuzzed_ingest_never_raises_and_accounts_for_every_message(tmp_path: Path) -> None:
    col = Collector(str(tmp_path / "fuzz.db"), BrokerConfig(), client_id="fuzz")
    seen_valid: set[str] = set()
    try:
        @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(messages, st.booleans())
        def run(batch: list[tuple[str, bytes]], with_status: bool) -> None:
            if with_status:
                batch = [*batch, ("bbt/v1/s1/pc-1/status", status_payload(True))]
            before = totals(col)
            incoming = [Incoming(t, p, time.time(), i, 1) for i, (t, p) in enumerate(batch)]
            prepared = [prepare(m) for m in incoming]  # never raises
            col.commit(incoming)  # never raises; one poisonous message cannot stop the batch
            after = totals(col)
            accepted = [p for p in prepared if p.kind != "rejected"]
            n_events = sum(len(p.events) for p in accepted)
            d = {k: after[k] - before[k] for k in after}
            # every message: stored (events/status/ack) or quarantined, never both, never neither
            assert d["rejected"] == d["quarantine"] == len(batch) - len(accepted)
            assert d["stored"] + d["duplicates"] == n_events
            assert d["events"] == d["stored"]
            for p in accepted:
                for row in p.events:
                    if row.id.startswith("v-") and row.id not in seen_valid:
                        seen_valid.add(row.id)
                        assert col.db.query("SELECT 1 AS x FROM events WHERE device = ? AND id = ?",
                                            (row.device, row.id)), row
            assert after["events"] == after["stored"] and after["quarantine"] == after["rejected"]

        run()
        assert totals(col)["stored"] > 50 and totals(col)["rejected"] > 50  # both paths really exercised
        internal = col.db.query("SELECT topic, reason, head FROM quarantine WHERE code = 'internal'")
        assert not internal, internal  # every rejection has a contract reason, not a crash
    finally:
        col.db.close()
