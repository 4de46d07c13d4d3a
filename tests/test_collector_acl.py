"""`bbt deploy mosquitto` against a real Mosquitto: per-device passwords, and an ACL that keeps each
device to its own topics (a device cannot publish as another, nor read another's commands)."""
from __future__ import annotations

import csv
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from collector.devices import registry
from collector.intake.service import Collector
from collector.operations import deploy
from common.mqttconf import BrokerConfig
from tests.brokers import Mosquitto, free_port, mosquitto_binary
from tests.helpers import run_bbt, wait_for

EVENT = {"id": "e-1", "seq": 0, "type": "heartbeat", "ts": "2026-11-23T08:05:00+08:00", "data": {"in_use": True}}


class Client:
    """A device-like MQTT client with credentials; records what it receives and its CONNACK."""

    def __init__(self, port: int, user: str, password: str | None, client_id: str | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.rc: Any = None
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or user)
        self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.c.reconnect_delay_set(5, 5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.rc = rc
        self.ready.set()

    def publish(self, topic: str, obj: Any) -> None:
        self.c.publish(topic, json.dumps(obj), qos=1).wait_for_publish(5)

    def subscribe(self, topic: str) -> None:
        done = threading.Event()
        self.c.on_subscribe = lambda *a: done.set()
        self.c.subscribe(topic, 1)
        assert done.wait(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def secured(tmp_path: Path) -> Any:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    devices = tmp_path / "devices.csv"
    devices.write_text("device,class\npc-1,初一(1)班\npc-2,初一(2)班\n", encoding="utf-8")
    port = free_port()
    out = tmp_path / "deploy"
    r = run_bbt("deploy", "mosquitto", "--devices", str(devices), "--school", "s1", "--out", str(out),
                "--port", str(port), "--data-dir", str(tmp_path / "broker") + "/")
    assert r.returncode == 0, r.stderr
    with (out / "device-passwords.csv").open(encoding="utf-8") as f:
        passwords = {row["user"]: row["password"] for row in csv.DictReader(f)}
    assert not any(p in r.stdout + r.stderr for p in passwords.values())  # passwords go to the file only
    # the production config, as written, with the log to a file instead of syslog
    conf = (out / "mosquitto.conf").read_text().replace("log_dest syslog", "log_dest file {dir}/mosquitto.log")
    template = tmp_path / "secured.conf.in"
    template.write_text(conf.replace("{", "{{").replace("}", "}}").replace("{{dir}}", "{dir}"))
    m = Mosquitto(tmp_path / "broker", template=template, port=port).start()
    yield m, out, passwords
    m.stop()


def test_deploy_files_and_passwords(secured: Any) -> None:
    _, out, passwords = secured
    assert set(passwords) == {"bbt-collector", "pc-1", "pc-2"}
    assert stat.S_IMODE(os.stat(out / "device-passwords.csv").st_mode) == 0o600
    hashes = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert all(h.startswith("$7$") for h in hashes.values())
    assert deploy.check_password(passwords["pc-1"], hashes["pc-1"])
    assert not deploy.check_password(passwords["pc-2"], hashes["pc-1"])
    conf = (out / "mosquitto.conf").read_text()
    assert "persistence true" in conf and "max_queued_messages 300000" in conf and "allow_anonymous false" in conf


def test_acl_keeps_each_device_to_its_own_topics(secured: Any, db_path: str) -> None:
    m, _, pw = secured
    col = Collector(db_path, BrokerConfig(port=m.port, username="bbt-collector", password=pw["bbt-collector"]),
                    client_id="bbt-collector")
    col.start()
    pc1 = Client(m.port, "pc-1", pw["pc-1"])
    pc2 = Client(m.port, "pc-2", pw["pc-2"])
    clients = [pc1, pc2]
    try:
        wait_for(col.connected.is_set, what="collector connected with its password")
        assert pc1.ready.wait(5) and not pc1.rc.is_failure
        # a wrong password, or none, is refused
        for user, password in (("pc-1", pw["pc-2"]), ("pc-1", None)):
            bad = Client(m.port, user, password, client_id=f"intruder-{len(clients)}")
            clients.append(bad)
            assert bad.ready.wait(5) and bad.rc.is_failure
        # pc-1 publishes as pc-2 (refused: dropped by the broker), then as itself (stored)
        pc1.publish("bbt/v1/s1/pc-2/events", dict(EVENT, id="forged"))
        pc1.publish("bbt/v1/s1/pc-2/status", {"online": False, "reason": "shutdown"})
        pc1.publish("bbt/v1/s1/pc-1/events", EVENT)
        wait_for(lambda: registry.ingest_stats(col.db)["stored"] == 1, what="pc-1's own event stored")
        pc2.publish("bbt/v1/s1/pc-2/events", dict(EVENT, id="real-2"))
        wait_for(lambda: registry.ingest_stats(col.db)["stored"] == 2, what="pc-2's own event stored")
        ids = {(r["device"], r["id"]) for r in col.db.query("SELECT device, id FROM events")}
        assert ids == {("pc-1", "e-1"), ("pc-2", "real-2")}
        assert registry.ingest_stats(col.db)["rejected"] == 0  # never reached the collector at all
        assert not col.db.query("SELECT 1 AS x FROM status_log WHERE device = 'pc-2'")

        # commands: pc-1 reads its own cmd topic and the policy, not pc-2's commands
        pc1.subscribe("bbt/v1/s1/pc-1/cmd")
        pc1.subscribe("bbt/v1/s1/pc-2/cmd")
        pc1.subscribe("bbt/v1/s1/policy")
        pc2.subscribe("bbt/v1/s1/pc-2/cmd")
        col.client.publish("bbt/v1/s1/pc-2/cmd", b'{"for":"pc-2"}', qos=1).wait_for_publish(5)
        col.client.publish("bbt/v1/s1/pc-1/cmd", b'{"for":"pc-1"}', qos=1).wait_for_publish(5)
        col.client.publish("bbt/v1/s1/policy", b'{"heartbeat_s":60}', qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: len(pc1.got) >= 2 and pc2.got, what="commands and policy delivered")
        assert sorted(t for t, _ in pc1.got) == ["bbt/v1/s1/pc-1/cmd", "bbt/v1/s1/policy"]
        assert pc2.got == [("bbt/v1/s1/pc-2/cmd", b'{"for":"pc-2"}')]
        # a device cannot publish commands or policy either
        pc1.publish("bbt/v1/s1/pc-2/cmd", {"forged": True})
        pc1.publish("bbt/v1/s1/policy", {"heartbeat_s": 5})
        pc2.publish("bbt/v1/s1/pc-2/events", dict(EVENT, id="real-3", seq=1))
        wait_for(lambda: registry.ingest_stats(col.db)["stored"] == 3, what="a later event stored")
        assert pc2.got == [("bbt/v1/s1/pc-2/cmd", b'{"for":"pc-2"}')]
        assert [p for t, p in pc1.got if t.endswith("policy")] == [b'{"heartbeat_s":60}']
    finally:
        for c in clients:
            c.close()
        col.stop()


def test_deploy_rejects_a_bad_devices_file_and_keeps_passwords(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("device,class\npc-1,1\npc 2,2\n", encoding="utf-8")
    r = run_bbt("deploy", "mosquitto", "--devices", str(bad), "--school", "s1", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "line 3" in r.stderr and "device" in r.stderr
    assert not (tmp_path / "o" / "passwd").exists()
    good = tmp_path / "good.csv"
    good.write_text("device\npc-1\n", encoding="utf-8")
    first = deploy.write_mosquitto(good, "s1", tmp_path / "o")
    before = (tmp_path / "o" / "device-passwords.csv").read_text()
    good.write_text("device\npc-1\npc-9\n", encoding="utf-8")
    again = deploy.write_mosquitto(good, "s1", tmp_path / "o")
    after = (tmp_path / "o" / "device-passwords.csv").read_text()
    assert first.new_passwords == 2 and again.new_passwords == 1
    assert all(line in after for line in before.splitlines())  # pc-1 keeps its password
