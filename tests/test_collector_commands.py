"""`bbt policy set|show` and `bbt cmd` against a real Mosquitto: stored, validated (nothing half-applied),
published (policy retained), commands tracked until acked or expired."""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

import protocol
from collector.db import connect
from collector.devices import commands, policy, school_keys
from collector.intake.service import Collector
from collector.operations.maintenance import Maintenance
from common import signing
from common.mqttconf import parse_broker_url
from tests.brokers import Mosquitto, free_port
from tests.helpers import close, run_bbt, wait_for


class FakeAgent:
    """Subscribes like an agent to its cmd topic and the policy; acks what it gets if told to."""

    def __init__(self, port: int, device: str, ack: bool = True) -> None:
        self.device, self.do_ack = device, ack
        self.cmds: list[dict[str, Any]] = []
        self.policies: list[dict[str, Any]] = []
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe([(protocol.cmd_topic("s1", device), 1), (protocol.policy_topic("s1"), 1)])
        assert subscribed.wait(5)

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        if m.topic.endswith("/policy"):
            self.policies.append(json.loads(m.payload))
            return
        cmd = protocol.decode_command(m.payload)
        self.cmds.append(cmd)
        if self.do_ack:
            client.publish(protocol.ack_topic("s1", self.device), json.dumps({"id": cmd["id"], "ok": True}), qos=1)

    def close(self) -> None:
        close(self.c)


def test_policy_set_validates_stores_and_publishes_retained(mosquitto: Mosquitto, db_path: str,
                                                            tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"heartbeat_s": 1, "software": {"deny": ["minecraft*"]}}), encoding="utf-8")
    r = run_bbt("policy", "set", str(bad), "--school", "s1", "--db", db_path, "--broker", mosquitto.url)
    assert r.returncode == 1 and "bad.json" in r.stderr and "heartbeat_s" in r.stderr and "Traceback" not in r.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"heartbeat_s": 30,\n "software": }', encoding="utf-8")
    r = run_bbt("policy", "set", str(broken), "--school", "s1", "--db", db_path)
    assert r.returncode == 1 and "line 2" in r.stderr
    r = run_bbt("policy", "show", "--school", "s1", "--db", db_path)
    assert r.returncode == 0 and json.loads(r.stdout) == protocol.DEFAULT_POLICY  # nothing was stored

    good = tmp_path / "policy.json"
    good.write_text(json.dumps({"software": {"deny": ["minecraft*", "*steam*"], "action": "block"},
                                "shutdown_after": "18:30", "heartbeat_s": 30, "future_key": 1}), encoding="utf-8")
    r = run_bbt("policy", "set", str(good), "--school", "s1", "--db", db_path, "--broker", mosquitto.url)
    assert r.returncode == 0, r.stderr
    shown = json.loads(run_bbt("policy", "show", "--school", "s1", "--db", db_path).stdout)
    assert shown["software"]["deny"] == ["minecraft*", "*steam*"] and shown["heartbeat_s"] == 30
    agent = FakeAgent(mosquitto.port, "pc-late")  # subscribes after the publish: gets the retained copy
    try:
        got = wait_for(lambda: agent.policies, what="retained policy")[0]
        # signed by default with the school's key (made in the store on first need)
        store = connect(db_path)
        assert signing.verify(got, school_keys.public_key(store, "s1"))
        store.close()
        got = {k: v for k, v in got.items() if k not in ("issued", "sig")}
        assert got == shown and got["idle_minutes"] == 5  # merged over the defaults
    finally:
        agent.close()


def test_policy_stored_while_broker_down_is_published_by_the_collector(mosquitto: Mosquitto, db_path: str,
                                                                       tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text('{"idle_minutes": 7}', encoding="utf-8")
    r = run_bbt("policy", "set", str(f), "--school", "s1", "--db", db_path, "--broker",
                f"mqtt://127.0.0.1:{free_port()}")
    assert r.returncode == 0 and "not published yet" in r.stderr
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-pol")
    col.start()
    try:
        wait_for(col.connected.is_set, what="collector connected")
        Maintenance(col).run_once()
        assert policy.get_policy(col.db, "s1")["published_version"] == 1
        agent = FakeAgent(mosquitto.port, "pc-1")
        try:
            assert wait_for(lambda: agent.policies, what="retained policy")[0]["idle_minutes"] == 7
        finally:
            agent.close()
    finally:
        col.stop()


def test_commands_sent_acked_and_expired(mosquitto: Mosquitto, db_path: str, tmp_path: Path) -> None:
    devices = tmp_path / "devices.csv"
    devices.write_text("device,class\npc-1,初一(1)班\npc-2,初一(2)班\npc-3,初一(2)班\n", encoding="utf-8")
    assert run_bbt("import", "devices", str(devices), "--school", "s1", "--db", db_path).returncode == 0
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-cmd")
    col.start()
    agents = [FakeAgent(mosquitto.port, "pc-1"), FakeAgent(mosquitto.port, "pc-2", ack=False),
              FakeAgent(mosquitto.port, "pc-3")]
    try:
        wait_for(col.connected.is_set, what="collector connected")
        r = run_bbt("cmd", "message", "--class", "初一(2)班", "--school", "s1", "--text", "请关闭投影仪",
                    "--db", db_path, "--broker", mosquitto.url)
        assert r.returncode == 0, r.stderr
        assert len(r.stdout.strip().splitlines()) == 2
        got = wait_for(lambda: agents[2].cmds, what="pc-3 got the message")[0]
        assert got["kind"] == "message" and got["args"] == {"text": "请关闭投影仪"}
        assert agents[1].cmds and agents[1].cmds[0]["id"] != got["id"] and not agents[0].cmds
        wait_for(lambda: commands.list_commands(col.db, state="acked"), what="pc-3's ack recorded")
        states = {c["device"]: c["state"] for c in commands.list_commands(col.db)}
        assert states == {"pc-2": "sent", "pc-3": "acked"}

        r = run_bbt("cmd", "shutdown", "pc-2", "--delay", "30", "--expires-in", "1", "--db", db_path,
                    "--broker", mosquitto.url)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(agents[1].cmds) == 2, what="pc-2 got the shutdown")
        assert agents[1].cmds[1]["args"] == {"delay_s": 30}
        # expiry is stored in whole seconds (RFC 3339), so "1 s" ends 0.5-1.5 s after creation
        wait_for(lambda: commands.list_commands(col.db, state="expired"), 5, what="the shutdown expired")
        r = run_bbt("cmd", "list", "--state", "expired", "--db", db_path)
        assert r.returncode == 0 and r.stdout.count("expired") == 1 and "s1/pc-2\tshutdown\texpired" in r.stdout
        rows = sorted((c["device"], c["kind"], c["state"]) for c in commands.list_commands(col.db))
        assert rows == [("pc-2", "message", "sent"), ("pc-2", "shutdown", "expired"), ("pc-3", "message", "acked")]

        # bad requests: one clear line each, nothing stored
        n = len(commands.list_commands(col.db))
        for args, needle in ((["message", "pc-1"], "--text"), (["shutdown", "nosuch"], "no known device"),
                             (["shutdown"], "name one target"), (["message", "pc-1", "--text", "x" * 501], "500"),
                             (["shutdown", "pc-1", "--delay", "-5"], "delay_s")):
            r = run_bbt("cmd", *args, "--db", db_path, "--broker", mosquitto.url)
            assert r.returncode != 0 and needle in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
        assert len(commands.list_commands(col.db)) == n
    finally:
        for a in agents:
            a.close()
        col.stop()
