"""The test relay (tests/brokers.TcpProxy) that the fault rig, the collector tests and the agent benchmark
put between a client and Mosquitto: it must hold the CONNACK back when asked and keep a quiet connection."""
from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt

from tests.brokers import Mosquitto, TcpProxy


def _client(port: int, connected: threading.Event, acked: threading.Event) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="relay-test")
    c.on_connect = lambda *a: connected.set()
    c.on_publish = lambda *a: acked.set()
    c.connect("127.0.0.1", port, keepalive=60)
    return c


def test_the_relay_holds_the_connack_back_and_keeps_a_quiet_connection(mosquitto: Mosquitto) -> None:
    relay = TcpProxy(mosquitto.port, connack_delay=0.5)
    connected, acked, dropped = threading.Event(), threading.Event(), threading.Event()
    t0 = time.monotonic()
    c = _client(relay.port, connected, acked)
    c.on_disconnect = lambda *a: dropped.set()
    c.loop_start()
    try:
        assert connected.wait(5)
        took = time.monotonic() - t0
        assert 0.5 <= took < 3.0, took
        time.sleep(3.0)  # longer than the relay's connect timeout: a quiet connection must stay open
        assert not dropped.is_set()
        c.publish("relay/test", b"x", qos=1)
        assert acked.wait(5)
        assert not dropped.is_set()
    finally:
        c.loop_stop()
        c.disconnect()
        relay.close()
