"""collector/fastmqtt.py overrides private parts of paho-mqtt (pinned >=2.0,<3 in pyproject.toml).

These tests fail with a message naming what changed, so that a paho upgrade breaks a test, not the collector."""
from __future__ import annotations

import collections
import inspect
from importlib.metadata import version
from typing import Any

import paho.mqtt.client as mqtt

from collector.fastmqtt import BufferedReadClient

WHY = ("collector/fastmqtt.py relies on paho-mqtt's private {what}; paho-mqtt " + version("paho-mqtt")
       + " changed it: adapt fastmqtt (or drop its overrides) before moving the pin in pyproject.toml")

# the private methods fastmqtt overrides or calls, with the parameters it passes
METHODS = {"_packet_queue": ["self", "command", "packet", "mid", "qos", "info"],
           "_sock_recv": ["self", "bufsize"], "_sock_close": ["self"],
           "loop_read": ["self", "max_packets"], "ack": ["self", "mid", "qos"]}
ATTRIBUTES = ("_out_packet", "_sockpairW", "_sock")


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
