"""Helpers for the agent's tests: a subscriber that collects events and acks, an agent process."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from tests.helpers import ROOT, bbt_cmd

FAST = {  # short periods so that tests run quickly; everything else at its default
    "BBT_AGENT_USAGE_S": "0.5", "BBT_AGENT_POWER_S": "0.5", "BBT_AGENT_FAULT_S": "1", "BBT_AGENT_USB_S": "1",
    "BBT_AGENT_DESKTOP": "none", "BBT_AGENT_INVENTORY_H": "1000", "BBT_AGENT_REPLAY_RATE": "50",
}


class Sink:
    """Subscribes to a school's events and acks; keeps every event and ack received."""

    def __init__(self, port: int, school: str = "s1", client_id: str = "sink") -> None:
        self.events: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.c.on_message = self._on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(f"bbt/v1/{school}/+/events", 1), (f"bbt/v1/{school}/+/cmd/ack", 1)])
        self.c.loop_start()
        assert subscribed.wait(10), "the sink's subscription was not acknowledged"  # nothing published is missed

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        obj = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/ack"):
                self.acks.append(obj)
            else:
                self.events.extend(obj if isinstance(obj, list) else [obj])

    def of(self, etype: str, **match: Any) -> list[dict[str, Any]]:
        with self.lock:
            evs = list(self.events)
        return [e for e in evs if e["type"] == etype and all(e["data"].get(k) == v for k, v in match.items())]

    def ack(self, cid: str) -> dict[str, Any] | None:
        with self.lock:
            return next((a for a in self.acks if a["id"] == cid), None)

    def publish(self, topic: str, obj: Any, retain: bool = False) -> None:
        self.c.publish(topic, json.dumps(obj), qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def start_agent(tmp: Path, url: str, device: str = "pc-1", **env: str) -> subprocess.Popen[bytes]:
    full = dict(os.environ, BBT_AGENT_DATA_DIR=str(tmp / ("agent-" + device)), **FAST)
    full.update(env)
    with (tmp / (f"agent-{device}.log")).open("ab") as log:
        return subprocess.Popen(bbt_cmd("-v", "agent", "run", "--broker", url, "--school", "s1", "--device", device),
                                cwd=ROOT, env=full, stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
