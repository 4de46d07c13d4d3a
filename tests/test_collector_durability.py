"""Exactly once, whatever crashes: a collector process SIGKILLed three times mid-stream, and a
Mosquitto restarted (persistence on) mid-stream, against a real broker."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from collector.intake.service import Collector
from common.mqttconf import BrokerConfig, parse_broker_url
from tests.brokers import Mosquitto, TcpProxy
from tests.helpers import ROOT, bbt_cmd, close, wait_for

SCHOOL = "s1"


def event(device: str, seq: int) -> dict[str, Any]:
    return {"id": f"{device}-{seq}", "seq": seq, "type": "heartbeat", "ts": "2026-11-23T08:05:00+08:00",
            "data": {"in_use": seq % 2 == 0, "idle_s": seq % 300}}


def count(db_path: str, sql: str = "SELECT COUNT(*) FROM events") -> int:
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as conn:
            value = conn.execute(sql).fetchone()[0]
        conn.close()
        return int(value)
    except sqlite3.OperationalError:  # not created yet
        return -1


def fast_publisher(port: int, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.reconnect_delay_set(1, 2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish_stream(client: mqtt.Client, devices: list[str], per_device: int, start: int = 0,
                   pause_every: int = 0, pause: float = 0.0) -> list[mqtt.MQTTMessageInfo]:
    """One event per message, QoS 1, pipelined (paho keeps up to 1000 in flight)."""
    infos = []
    n = 0
    for seq in range(start, start + per_device):
        for dev in devices:
            ev = event(dev, seq)
            infos.append(client.publish(f"bbt/v1/{SCHOOL}/{dev}/events", json.dumps(ev), qos=1))
            n += 1
            if pause_every and n % pause_every == 0:
                time.sleep(pause)
    return infos


def wait_for_quiet(pred: Any, timeout: float) -> bool:
    try:
        wait_for(pred, timeout)
        return True
    except AssertionError:
        return False


def start_collector(mosquitto: Mosquitto, db: str, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(bbt_cmd("collect", "--broker", mosquitto.url, "--db", db, "--batch-ms", "20"),
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_collector_sigkilled_three_times_stores_20000_events_exactly_once(mosquitto: Mosquitto,
                                                                           tmp_path: Path) -> None:
    db = str(tmp_path / "bbt.db")
    devices = [f"pc-{i:02d}" for i in range(20)]
    total = 20_000
    with (tmp_path / "collect.log").open("wb") as log:
        proc = start_collector(mosquitto, db, log)
        pub = fast_publisher(mosquitto.port, "load")
        try:
            # the collector's persistent session exists once a first event got through (repeats are duplicates)
            def probe() -> bool:
                pub.publish(f"bbt/v1/{SCHOOL}/{devices[0]}/events", json.dumps(event(devices[0], 0)), qos=1)
                return wait_for_quiet(lambda: count(db) == 1, 0.5)

            wait_for(probe, 30, interval=0, what="first event stored")
            infos: list[mqtt.MQTTMessageInfo] = []
            feeder = threading.Thread(target=lambda: infos.extend(publish_stream(pub, devices[1:], total // 20)
                                                                  + publish_stream(pub, devices[:1], total // 20 - 1,
                                                                                   start=1)))
            feeder.start()
            kills = []
            for k in (1, 2, 3):
                target = k * total // 4
                wait_for(lambda: count(db) >= target, 60, interval=0.01, what=f"{k}/4 stored")  # noqa: B023
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                kills.append(count(db))
                proc = start_collector(mosquitto, db, log)
            feeder.join(60)
            for info in infos:
                info.wait_for_publish(30)
            assert len(infos) == total - 1 and all(i.is_published() for i in infos)
            wait_for(lambda: count(db) >= total, 60, interval=0.05, what="all 20,000 stored")
            time.sleep(0.5)  # anything still redelivered must not add rows
            assert count(db) == total
            assert count(db, "SELECT COUNT(DISTINCT device || '/' || id) FROM events") == total
            assert count(db, "SELECT value FROM counters WHERE name = 'stored'") == total
            for dev in devices:
                assert count(db, f"SELECT COUNT(DISTINCT seq) FROM events WHERE device = '{dev}'") == total // 20
            assert count(db, "SELECT COUNT(*) FROM gaps WHERE closed IS NULL") == 0
            assert kills[0] < kills[1] < kills[2] < total, kills  # really killed mid-stream
        finally:
            close(pub)
            proc.terminate()
            proc.wait(15)
    assert proc.returncode == 0, (tmp_path / "collect.log").read_text()


def test_broker_restarted_mid_stream_loses_nothing(mosquitto: Mosquitto, db_path: str) -> None:
    devices = [f"pc-{i}" for i in range(5)]
    per_device = 1000
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-restart", batch_ms=20)
    col.start()
    pub = fast_publisher(mosquitto.port, "load-restart")
    try:
        wait_for(col.connected.is_set, what="collector connected")
        infos: list[mqtt.MQTTMessageInfo] = []
        feeder = threading.Thread(target=lambda: infos.extend(
            publish_stream(pub, devices, per_device, pause_every=250, pause=0.05)))
        feeder.start()
        wait_for(lambda: count(db_path) >= 1000, 30, interval=0.01, what="stream under way")
        mosquitto.restart()  # SIGTERM: Mosquitto saves sessions, queues and retained messages
        restarted_at = count(db_path)
        feeder.join(60)
        # paho resends what was in flight or published while the broker was away (rc NO_CONN, kept in
        # its queue) after reconnecting; _published turns true at the PUBACK
        wait_for(lambda: all(i._published for i in infos), 30, what="every publish acknowledged")
        wait_for(lambda: count(db_path) >= len(devices) * per_device, 60, what="every event stored")
        time.sleep(0.3)
        assert count(db_path) == len(devices) * per_device
        assert count(db_path, "SELECT COUNT(*) FROM gaps WHERE closed IS NULL") == 0
        assert restarted_at < len(devices) * per_device  # the restart really was mid-stream
        assert col.connections >= 2
    finally:
        close(pub)
        col.stop()


def test_connected_means_subscribed(mosquitto: Mosquitto, db_path: str) -> None:
    """A device that publishes the moment the collector says it is connected reaches it: connected
    is the broker's SUBACK, not its CONNACK (with persistent sessions nothing queues for a
    subscription the broker has not seen yet)."""
    relay = TcpProxy(mosquitto.port, uplink_delay=1.0)
    col = Collector(db_path, BrokerConfig(port=relay.port), client_id="col-slow-uplink")
    col.start()
    pub = fast_publisher(mosquitto.port, "pub-slow-uplink")
    try:
        assert col.connected.wait(10)
        pub.publish(f"bbt/v1/{SCHOOL}/pc-1/events", json.dumps(event("pc-1", 0)), qos=1).wait_for_publish(5)
        wait_for(lambda: count(db_path) == 1, 10, what="the event published right after connected stored")
    finally:
        close(pub)
        col.stop()
        relay.close()
