"""Bad messages are quarantined with their reason and counted; the next valid message is stored."""
from __future__ import annotations

import json
from pathlib import Path

from collector.devices import registry
from collector.intake.service import Collector
from common.mqttconf import parse_broker_url
from dashboard import create_app
from dashboard.users import add_user, create_token
from tests.brokers import Mosquitto
from tests.helpers import close, publisher, wait_for

GOOD = {"id": "ok-1", "seq": 0, "type": "heartbeat", "ts": "2026-11-23T08:05:00+08:00", "data": {"in_use": True}}

BAD = {
    "not_json": b"{oops",
    "not_utf8": b"\xc3\x28",
    "bad_field": json.dumps(dict(GOOD, seq="one")).encode(),
    "unknown_type": json.dumps(dict(GOOD, type="mood")).encode(),
    "device_mismatch": json.dumps(dict(GOOD, device="someone-else")).encode(),
    "too_large": json.dumps(dict(GOOD, data={"in_use": True, "pad": "x" * 70000})).encode(),
}


def test_bad_input_quarantined_counted_and_next_valid_stored(mosquitto: Mosquitto, db_path: str,
                                                             tmp_path: Path) -> None:
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-bad")
    col.start()
    pub = publisher(mosquitto.port)
    try:
        wait_for(col.connected.is_set, what="collector connected")
        topic = "bbt/v1/s1/pc-1/events"
        for payload in BAD.values():
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        pub.publish(topic, json.dumps(GOOD).encode(), qos=1).wait_for_publish(5)
        wait_for(lambda: registry.ingest_stats(col.db)["stored"] == 1, what="valid event stored")
        codes = sorted(r["code"] for r in registry.quarantine(col.db))
        assert codes == sorted(BAD)
        assert all(r["topic"] == topic and r["reason"] for r in registry.quarantine(col.db))

        app = create_app({"BBT_DB": db_path, "TESTING": True})
        add_user(col.db, "ops", "admin", "ops-password")
        token = create_token(col.db, "ops")
        r = app.test_client().get("/api/v1/stats/ingest", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert r.get_json() == {"stored": 1, "duplicates": 0, "rejected": len(BAD), "gaps": 0}
        assert app.test_client().get("/api/v1/stats/ingest").status_code == 401
    finally:
        close(pub)
        col.stop()
