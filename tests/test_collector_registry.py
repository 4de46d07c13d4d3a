"""Device registry detail: inventory changes, drift history, offline after three missed heartbeats of the
school's policy, heartbeat retention, and a poisonous message that cannot stop a batch."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from collector.devices import policy, registry
from collector.devices.ingest import Incoming, prepare
from collector.intake import inventory
from collector.intake.service import Collector
from collector.intake.store import apply_batch
from collector.operations import retention
from common.mqttconf import BrokerConfig

NOW = time.time()


def msg(device: str, events: list[dict[str, Any]], received: float = NOW) -> Incoming:
    return Incoming(f"bbt/v1/s1/{device}/events", json.dumps(events).encode(), received)


def ev(i: int, etype: str, data: dict[str, Any], ts: str = "2026-11-23T08:05:00+08:00") -> dict[str, Any]:
    return {"id": f"e-{i}", "seq": i, "type": etype, "ts": ts, "data": data}


def store(db: Any, *msgs: Incoming) -> None:
    apply_batch(db, [prepare(m) for m in msgs])


def test_inventory_changes_and_drift_history(db: Any) -> None:
    sw1 = [{"name": "WPS Office", "version": "11.1", "publisher": "Kingsoft"}, {"name": "Chrome", "version": "99"}]
    sw2 = [{"name": "wps office", "version": "11.2", "publisher": "Kingsoft"}, {"name": "Minecraft", "version": "1.20"}]
    store(db, msg("pc-1", [ev(0, "inventory", {"hostname": "T101", "os": "Windows 10", "software": sw1})]))
    assert inventory.software_changes(db, "s1") == []  # the first inventory is the baseline
    store(db, msg("pc-1", [ev(1, "inventory", {"hostname": "T101", "os": "Windows 10", "software": sw2},
                              ts="2026-11-24T08:05:00+08:00")]))
    changes = {(c["change"], c["name"], c["version"], c["old_version"]) for c in inventory.software_changes(db, "s1")}
    assert changes == {("installed", "Minecraft", "1.20", None), ("removed", "Chrome", None, "99"),
                       ("updated", "wps office", "11.2", "11.1")}
    # an older inventory replayed late is kept as history but compares with nothing
    store(db, msg("pc-1", [ev(2, "inventory", {"hostname": "OLD", "software": []}, ts="2026-11-01T08:00:00+08:00")]))
    assert len(inventory.software_changes(db, "s1")) == 3
    latest = inventory.latest_inventory(db, "s1", "pc-1")
    assert latest is not None and latest["event_id"] == "e-1" and latest["software_count"] == 2

    store(db, msg("pc-1", [ev(3, "drift", {"field": "hostname", "old": "T101", "new": "T101-NEW"}),
                           ev(4, "drift", {"field": "ip", "old": "10.0.0.5", "new": ["10.0.0.6"]})]))
    hist = inventory.drift_history(db, "s1", "pc-1")
    assert {(h["field"], h["old_value"], h["new_value"]) for h in hist} == {
        ("hostname", "T101", "T101-NEW"), ("ip", "10.0.0.5", '["10.0.0.6"]')}
    assert db.query("SELECT hostname FROM devices WHERE device = 'pc-1'")[0]["hostname"] == "T101-NEW"
    # a redelivered inventory is a duplicate: no second snapshot, no second diff
    store(db, msg("pc-1", [ev(1, "inventory", {"hostname": "T101", "software": sw2}, ts="2026-11-24T08:05:00+08:00")]))
    assert len(inventory.software_changes(db, "s1")) == 3
    assert db.query("SELECT COUNT(*) AS n FROM inventories")[0]["n"] == 3
    detail = inventory.device_detail(db, "s1", "pc-1")
    assert detail is not None and detail["device"] == "pc-1" and detail["inventory"]["event_id"] == "e-1"
    assert len(detail["software_changes"]) == 3 and len(detail["drift"]) == 2 and detail["commands"] == []
    assert inventory.device_detail(db, "s1", "nosuch") is None


def test_device_registry_offline_after_three_missed_policy_heartbeats(db: Any) -> None:
    status = {"online": True, "ts": "2026-11-23T08:00:00+08:00", "reason": "startup", "boot_id": "boot-7",
              "agent": "1.2.3"}
    store(db, Incoming("bbt/v1/s1/pc-1/status", json.dumps(status).encode(), NOW - 100),
          msg("pc-1", [ev(0, "heartbeat", {"in_use": True})], received=NOW - 100))
    dev = registry.list_devices(db, "s1", now=NOW)[0]
    assert dev["online"] and dev["in_use"] and dev["boot_id"] == "boot-7" and dev["agent"] == "1.2.3"
    # default heartbeat 60 s: silent for 100 s is within 3 x 60; with the school's heartbeat_s = 30 it is not
    policy.set_policy(db, "s1", {"heartbeat_s": 30})
    dev = registry.list_devices(db, "s1", now=NOW)[0]
    assert not dev["online"] and not dev["in_use"]
    assert registry.list_devices(db, "s1", now=NOW - 20)[0]["online"]  # 80 s < 90 s


def test_heartbeat_retention_purges_only_old_heartbeats(db: Any) -> None:
    old, recent = "2020-01-01T08:00:00+08:00", time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(NOW - 3600))
    store(db, msg("pc-1", [ev(0, "heartbeat", {"in_use": False}, old), ev(1, "session", {"state": "start",
                                                                                          "session_id": "x"}, old),
                           ev(2, "heartbeat", {"in_use": True}, recent)]))
    assert retention.purge_heartbeats(db, 30, NOW, who="test") == 1
    left = {(r["id"], r["type"]) for r in db.query("SELECT id, type FROM events")}
    assert left == {("e-1", "session"), ("e-2", "heartbeat")}


def test_a_message_that_cannot_be_stored_is_quarantined_and_the_batch_goes_on(tmp_path: Path) -> None:
    def ack_handler(db: Any, p: Any) -> None:
        if p.status["id"] == "boom":
            raise ValueError("cannot apply this ack")

    col = Collector(str(tmp_path / "p.db"), BrokerConfig(), client_id="poison", ack_handler=ack_handler)
    try:
        batch = [msg("pc-1", [ev(0, "heartbeat", {"in_use": True})]),
                 Incoming("bbt/v1/s1/pc-1/cmd/ack", b'{"id":"boom","ok":true}', NOW),
                 msg("pc-2", [ev(0, "heartbeat", {"in_use": True})])]
        col.commit(batch)
        assert registry.ingest_stats(col.db) == {"stored": 2, "duplicates": 0, "rejected": 1, "gaps": 0}
        q = registry.quarantine(col.db)
        assert [(r["code"], r["topic"]) for r in q] == [("internal", "bbt/v1/s1/pc-1/cmd/ack")]
        assert "cannot apply this ack" in q[0]["reason"]
    finally:
        col.db.close()
