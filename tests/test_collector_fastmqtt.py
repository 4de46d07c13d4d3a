"""collector/intake/fastmqtt.py's own PUBLISH parser gives what paho's does, whatever the cut of the stream, and a
client with the fast path receives from a real Mosquitto exactly what a plain paho client receives."""
from __future__ import annotations

import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt import _packet

from collector.intake.fastmqtt import BufferedReadClient, take_publishes
from tests.brokers import Mosquitto, publish_packet
from tests.helpers import close, publisher, wait_for

PACKETS = [publish_packet(b"bbt/v1/s1/pc-1/events", b'{"id":"a"}', 1, 1),
           publish_packet(b"bbt/v1/s1/pc-2/status", b"", 0, retain=True),
           publish_packet(b"t/\xff\xfe", b"x" * 200, 1, 65535, dup=True),  # not UTF-8: the collector quarantines it
           publish_packet(b"big", b"y" * 20000, 1, 3),  # a 3-byte remaining length
           publish_packet("bbt/v1/s1/教室/events".encode(), "中文".encode(), 1, 4),
           b"\xd0\x00",  # PINGRESP: paho's
           publish_packet(b"after-ping", b"z", 1, 5),
           publish_packet(b"qos2", b"q", 2, 6),  # QoS 2: paho's (PUBREC/PUBREL)
           publish_packet(b"last", b"w", 0)]


def paho_decoded(packet: bytes) -> tuple[bytes, bytes, int, int, bool]:
    n = 1
    while packet[n] & 0x80:
        n += 1
    p = _packet.decode_publish(packet[0], packet[n + 1:], mqtt.MQTTv311)
    return p.topic, bytes(p.payload), p.mid, p.qos, p.retain


def test_every_cut_of_the_stream_takes_the_whole_packets_before_it_as_paho_decodes_them() -> None:
    stream = b"".join(PACKETS)
    ends, total = [], 0
    for p in PACKETS:
        total += len(p)
        ends.append(total)
    fast = PACKETS[:PACKETS.index(b"\xd0\x00")]  # the parser stops at the first packet that is not its own
    for cut in range(len(stream) + 1):
        got, used = take_publishes(bytearray(stream[:cut]))
        whole = [p for p, end in zip(PACKETS, ends, strict=True) if end <= cut and p in fast]
        assert got == [paho_decoded(p) for p in whole], cut
        assert used == sum(len(p) for p in whole)


def test_malformed_or_foreign_packets_are_left_to_paho() -> None:
    for bad in (b"\x32\x80\x80\x80\x80\x01" + b"x" * 10,  # a 5-byte remaining length
                b"\x32\x03\x00\x05ab" + b"\x00" * 4,  # a topic longer than the packet
                b"\x32\x04\x00\x00\x00\x01" + b"\x00" * 2,  # an empty topic (MQTT 3.1.1 forbids it)
                b"\x32\x03\x00\x01a\x00" + b"\x00" * 2,  # no room for the packet id
                b"\x36\x05\x00\x01a\x00\x01",  # QoS 3
                b"\x20\x02\x00\x00\x00"):  # CONNACK
        assert take_publishes(bytearray(bad)) == ([], 0), bad


def receive_all(port: int, client_id: str, fast: bool, n: int, subscribed: threading.Event,
                got: list[tuple[str, bytes, int, bool]], sunk: list[int]) -> None:
    lock = threading.Lock()

    def on_message(c: Any, u: Any, m: Any) -> None:
        with lock:
            got.append((m.topic, bytes(m.payload), m.qos, bool(m.retain)))
        if m.qos:
            c.ack(m.mid, m.qos)

    def sink(published: list[tuple[bytes, bytes, int, int, bool]]) -> None:
        with lock:
            got.extend((t.decode(), p, q, r) for t, p, _mid, q, r in published)
            sunk.append(len(published))
        c.ack_many([(mid, q) for _t, _p, mid, q, _r in published])

    cls: Any = BufferedReadClient if fast else mqtt.Client
    c = cls(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, manual_ack=True)
    c.on_message = on_message
    if fast:
        c.publish_sink = sink
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe("fm/#", 1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        wait_for(lambda: len(got) >= n, what=f"{n} messages")
        time.sleep(0.2)  # nothing more (no redelivery of acknowledged messages)
    finally:
        close(c)


def test_the_fast_path_receives_what_paho_receives_from_mosquitto(mosquitto: Mosquitto) -> None:
    pub = publisher(mosquitto.port, "fm-pub")
    try:
        pub.publish("fm/retained", b"kept", qos=1, retain=True).wait_for_publish(5)
        results = []
        for fast in (False, True):
            got: list[tuple[str, bytes, int, bool]] = []
            subscribed, sunk = threading.Event(), list[int]()
            t = threading.Thread(target=receive_all, args=(mosquitto.port, f"fm-{fast}", fast, 3002, subscribed, got,
                                                           sunk))
            t.start()
            wait_for(subscribed.is_set, what="subscribed")
            infos = [pub.publish(f"fm/{i % 7}", (b"%d-" % i) * (1 + i % 300), qos=i % 3) for i in range(3000)]
            infos.append(pub.publish("fm/huge", b"h" * 300_000, qos=1))  # over many 64 KiB reads
            for info in infos:
                info.wait_for_publish(10)
            t.join(30)
            results.append(got)
        assert sum(sunk) > 1000  # QoS 0 and 1 took the fast path (QoS 2 and any packet cut by a read did not)
        plain, fast_got = results
        assert len(plain) == 3002 and sorted(fast_got) == sorted(plain)
        for topic in {m[0] for m in plain}:  # the broker keeps the order of a topic's QoS 1 messages
            assert [m for m in fast_got if m[0] == topic and m[2] == 1] == \
                [m for m in plain if m[0] == topic and m[2] == 1]
        assert ("fm/retained", b"kept", 1, True) in fast_got
    finally:
        close(pub)


def test_the_fast_path_sees_the_broker_go_away(mosquitto: Mosquitto) -> None:
    """A closed connection reaches paho at once (no busy loop on a socket at its end, no wait for keepalive)."""
    c = BufferedReadClient(mqtt.CallbackAPIVersion.VERSION2, client_id="fm-gone", manual_ack=True)
    c.publish_sink = lambda published: None
    lost, subscribed = threading.Event(), threading.Event()
    c.on_disconnect = lambda *a: lost.set()
    c.on_subscribe = lambda *a: subscribed.set()
    c.on_connect = lambda cl, *a: cl.subscribe("fm/#", 1)
    c.connect("127.0.0.1", mosquitto.port, keepalive=60)
    c.loop_start()
    try:
        wait_for(subscribed.is_set, what="subscribed")
        cpu = time.process_time()
        mosquitto.stop()
        wait_for(lost.is_set, timeout=5, what="the disconnect")
        assert time.process_time() - cpu < 1.0
    finally:
        close(c)
