"""An agent with the collector's public key obeys only signed commands and policies, never a replay."""
from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import protocol
from collector.devices import commands as collector_commands
from collector.devices import policy as collector_policy
from common import signing
from tests.agent_helpers import Sink, start_agent, stop
from tests.brokers import Mosquitto
from tests.helpers import wait_for


def command(cid: str, text: str, expires_in: float = 600, issued_ago: float = 0) -> dict[str, Any]:
    t = datetime.now(UTC) - timedelta(seconds=issued_ago)
    return protocol.make_command(cid, "message", {"text": text}, t, t + timedelta(seconds=expires_in))


def test_agent_refuses_unsigned_forged_and_replayed_commands_and_policies(mosquitto: Mosquitto,
                                                                        tmp_path: Path) -> None:
    pub = signing.ensure_keypair(tmp_path / "keys" / "command-signing.key", [], [])
    key = signing.load_private(tmp_path / "keys" / "command-signing.key")
    signing.ensure_keypair(tmp_path / "keys" / "other.key", [], [])
    other = signing.load_private(tmp_path / "keys" / "other.key")
    sink = Sink(mosquitto.port)
    agent = start_agent(tmp_path, mosquitto.url, BBT_AGENT_COMMAND_KEY=pub)
    log = tmp_path / "agent-pc-1.log"
    topic = protocol.cmd_topic("s1", "pc-1")
    try:
        wait_for(lambda: sink.of("power", state="on"), 20, what="agent online")
        time.sleep(0.3)  # its subscriptions
        good = signing.sign(command("c-good", "第一节课后请关机"), key)
        cases = {
            "c-unsigned": command("c-unsigned", "unsigned"),
            "c-otherkey": signing.sign(command("c-otherkey", "forged"), other),
            "c-altered": {**signing.sign(command("c-altered", "original"), key), "args": {"text": "altered"}},
            "c-expired": signing.sign(command("c-expired", "too late", expires_in=60, issued_ago=120), key),
            "c-forever": signing.sign(command("c-forever", "long", expires_in=30 * 86400), key),
        }
        for obj in cases.values():
            sink.publish(topic, obj)
        sink.publish(topic, good)
        wait_for(lambda: all(sink.ack(c) for c in [*cases, "c-good"]), 15, what="every command acked")
        assert sink.ack("c-good") == {"id": "c-good", "ok": True}
        reasons = {c: sink.ack(c)["error"] for c in cases}  # type: ignore[index]
        assert all(not sink.ack(c)["ok"] for c in cases)  # type: ignore[index]
        assert "unsigned" in reasons["c-unsigned"]
        assert "not the pinned key" in reasons["c-otherkey"]
        assert "does not verify" in reasons["c-altered"]
        assert reasons["c-expired"] == "expired"
        assert "more than" in reasons["c-forever"]
        # the same signed command captured and sent again: acknowledged again, never executed twice
        sink.publish(topic, good)
        wait_for(lambda: len([a for a in sink.acks if a["id"] == "c-good"]) == 2, 10, what="replay acked")
        time.sleep(0.3)
        text = log.read_text(encoding="utf-8", errors="replace")
        assert text.count("第一节课后请关机") == 1, "executed exactly once"
        for refused in ("unsigned", "forged", "altered", "too late", "long"):
            assert f"): {refused}" not in text

        # policies: unsigned refused; signed applied; an older signed one (a replay) refused
        ptopic = protocol.policy_topic("s1")
        now = datetime.now(UTC)
        sink.publish(ptopic, {"idle_minutes": 7}, retain=True)
        wait_for(lambda: "unsigned" in log.read_text(errors="replace"), 10, what="unsigned policy refused")
        new = signing.sign({"idle_minutes": 9}, key, now=now)
        old = signing.sign({"idle_minutes": 3}, key, now=now - timedelta(hours=1))
        sink.publish(ptopic, new, retain=True)
        wait_for(lambda: "policy applied" in log.read_text(errors="replace"), 10, what="signed policy applied")
        sink.publish(ptopic, old, retain=True)
        wait_for(lambda: "older than the one in force" in log.read_text(errors="replace"), 10,
                 what="old policy refused")
        assert log.read_text(errors="replace").count("policy applied") == 1
    finally:
        stop(agent)
        sink.close()


def test_collector_signs_what_it_publishes(tmp_path: Path, monkeypatch: Any) -> None:
    pub = signing.ensure_keypair(tmp_path / "command-signing.key", [], [])
    sent: list[tuple[str, bytes, bool]] = []

    def send(topic: str, payload: bytes, retain: bool) -> None:
        sent.append((topic, payload, retain))

    cmd = command("c-1", "hello")
    collector_commands.publish(send, "s1", "pc-1", cmd)
    assert "sig" not in json.loads(sent[-1][1]), "no key configured: unsigned (development)"
    monkeypatch.setenv("BBT_SIGNING_KEY", str(tmp_path / "command-signing.key"))
    collector_commands.publish(send, "s1", "pc-1", cmd)
    wire = json.loads(sent[-1][1])
    assert signing.verify(wire, pub) and wire["issued"] == cmd["issued"] and wire["expires"] == cmd["expires"]
    protocol.validate_command(wire)
    collector_policy.publish(send, "s1", {"idle_minutes": 8, "issued": "2000-01-01T00:00:00+08:00"})
    topic, payload, retain = sent[-1]
    p = json.loads(payload)
    assert topic == "bbt/v1/s1/policy" and retain and signing.verify(p, pub)
    assert p["issued"] > "2026", "a fresh issued time on every publish"
    assert protocol.validate_policy(p)["idle_minutes"] == 8
