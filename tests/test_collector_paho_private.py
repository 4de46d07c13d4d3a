"""collector/intake/fastmqtt.py overrides private parts of paho-mqtt (pinned >=2.0,<3 in pyproject.toml).

These tests fail with a message naming what changed, so that a paho upgrade breaks a test, not the collector."""
from __future__ import annotations

import collections
import inspect
from importlib.metadata import version
from typing import Any

import paho.mqtt.client as mqtt

from collector.intake.fastmqtt import BufferedReadClient

WHY = ("collector/intake/fastmqtt.py relies on paho-mqtt's private {what}; paho-mqtt " + version("paho-mqtt")
       + " changed it: adapt fastmqtt (or drop its overrides) before moving the pin in pyproject.toml")

# the private methods fastmqtt overrides or calls, with the parameters it passes
METHODS = {"_packet_queue": ["self", "command", "packet", "mid", "qos", "info"],
           "_sock_recv": ["self", "bufsize"], "_sock_close": ["self"],
           "loop_read": ["self", "max_packets"], "ack": ["self", "mid", "qos"]}
ATTRIBUTES = ("_out_packet", "_sockpairW", "_sock", "_in_packet", "_msgtime_mutex", "_last_bytes_received",
              "_protocol", "_manual_ack")


def client(cls: Any = mqtt.Client) -> Any:
    return cls(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-private", manual_ack=True)


def test_paho_is_the_major_version_fastmqtt_is_tested_with() -> None:
    assert version("paho-mqtt").split(".")[0] == "2", WHY.format(what="API (major version 2)")


def test_the_private_methods_fastmqtt_overrides_are_there() -> None:
    for name, params in METHODS.items():
        method = getattr(mqtt.Client, name, None)
        assert callable(method), WHY.format(what=f"method Client.{name}")
        got = list(inspect.signature(method).parameters)
        assert got == params, WHY.format(what=f"signature of Client.{name}: {got}, expected {params}")


def test_the_private_attributes_fastmqtt_uses_are_there() -> None:
    c = client()
    for name in ATTRIBUTES:
        assert hasattr(c, name), WHY.format(what=f"attribute Client.{name}")
    assert isinstance(c._out_packet, collections.deque), WHY.format(what="Client._out_packet (a deque)")
    assert c._in_packet["command"] == 0, WHY.format(what="Client._in_packet (command 0 between packets)")
    assert c._manual_ack is True and c._protocol == mqtt.MQTTv311, WHY.format(what="_manual_ack / _protocol")
    assert callable(mqtt.time_func) and isinstance(c._last_bytes_received, float), \
        WHY.format(what="time_func / Client._last_bytes_received (the keepalive's clock)")
    assert mqtt.MQTTMessage(topic=b"bbt/v1/s/d/events")._topic == b"bbt/v1/s/d/events", \
        WHY.format(what="MQTTMessage._topic (the raw topic the collector's on_message reads)")


def test_paho_reads_a_packet_the_way_fastmqtt_leaves_it() -> None:
    """fastmqtt hands paho the packets it does not take itself: paho must read them through _sock_recv
    and reset _in_packet's command to 0 after each one (fastmqtt parses only between packets)."""
    c = client(BufferedReadClient)
    c._bbt_rbuf += b"\xd0\x00"  # PINGRESP, served from fastmqtt's buffer
    c._sock = object()  # not None: paho reads; every read is served from the buffer
    try:
        rc = mqtt.Client.loop_read(c)
    finally:
        c._sock = None
    assert rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and not c._bbt_rbuf, WHY.format(what="Client.loop_read")
    assert c._in_packet["command"] == 0, WHY.format(what="Client._packet_read (resetting _in_packet)")


def test_a_quietly_queued_packet_looks_like_one_paho_queues_itself() -> None:
    """ack_many appends to _out_packet itself: the entry must have exactly the shape paho's writer reads."""
    theirs, ours = client(), client(BufferedReadClient)
    mqtt.Client._packet_queue(theirs, 0x40, b"\x40\x02\x00\x07", 7, 1)
    ours._bbt_quiet.on = True
    ours._packet_queue(0x40, b"\x40\x02\x00\x07", 7, 1)
    assert len(theirs._out_packet) == 1 and len(ours._out_packet) == 1, WHY.format(what="Client._packet_queue")
    paho_entry, our_entry = theirs._out_packet[0], ours._out_packet[0]
    assert set(our_entry) == set(paho_entry), WHY.format(what=f"out-packet entry keys {sorted(paho_entry)}")
    assert our_entry == paho_entry


def test_ack_many_writes_the_pubacks_paho_would_write() -> None:
    theirs, ours = client(), client(BufferedReadClient)
    mids = [1, 7, 300, 65535]
    for mid in mids:
        theirs.ack(mid, 1)  # not connected: paho queues the PUBACK and cannot write it yet
    ours.ack_many([(mid, 1) for mid in mids])
    paho_bytes = b"".join(bytes(e["packet"]) for e in theirs._out_packet)
    assert len(theirs._out_packet) == len(mids), WHY.format(what="Client.ack / _send_puback")
    assert [bytes(e["packet"]) for e in ours._out_packet] == [paho_bytes], WHY.format(what="PUBACK packet")
