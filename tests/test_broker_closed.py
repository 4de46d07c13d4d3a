"""The embedded broker is closed (issue 22): tested from outside with paho and mosquitto_pub/_sub."""
from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from collector.intake import credentials
from common.mqttconf import release_sockets
from tests.brokers import EmbeddedRig as Rig
from tests.helpers import wait_for


class Client:
    """A paho client that records its CONNACK, SUBACKs, messages and disconnects."""

    def __init__(self, port: int, client_id: str, username: str | None = None, password: str | None = None,
                 will: str | None = None) -> None:
        # no reconnecting: a refused client's thread would sleep out paho's reconnect delay before it stops
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                             reconnect_on_failure=False)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will:
            self.c.will_set(will, b"{}", qos=1)
        self.connack: Any = None
        self.subacks: list[Any] = []
        self.messages: list[tuple[str, bytes]] = []
        self.disconnected = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p=None: setattr(self, "connack", rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.extend(rcs)
        self.c.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        wait_for(lambda: self.connack is not None or self.disconnected.is_set(), 10, what="a CONNACK")

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def subscribe(self, topic: str) -> Any:
        n = len(self.subacks)
        self.c.subscribe(topic, 1)
        wait_for(lambda: len(self.subacks) > n, 5, what=f"SUBACK for {topic}")
        return self.subacks[-1]

    def publish(self, topic: str, payload: bytes = b'{"x":1}', retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        release_sockets(self.c)


def test_anonymous_and_wrong_credentials_are_refused(rig: Rig) -> None:
    cases = [("anon", None, None), ("pc-1", "pc-1", "wrong"), ("pc-1", "pc-1", ""),
             ("pc-2", "pc-1", rig.pw["pc-1"]),  # another PC's client id with pc-1's account
             ("pc-3", "pc-3", rig.pw["pc-1"]), ("x", credentials.COLLECTOR_USER, "wrong")]
    for client_id, user, pw in cases:
        c = Client(rig.port, client_id, user, pw)
        assert not c.accepted, (client_id, user)
        c.close()
    ok = Client(rig.port, "pc-1", "pc-1", rig.pw["pc-1"])
    assert ok.accepted
    ok.close()
    # an outside client: mosquitto_pub without credentials is refused too
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(rig.port), "-q", "1", "-t",
                        "bbt/v1/s1/pc-1/events", "-m", "{}"], capture_output=True, text=True, timeout=20)
    assert r.returncode != 0 and "not authori" in (r.stderr + r.stdout).lower(), r


def test_a_pc_is_confined_to_its_own_topics(rig: Rig) -> None:
    spy = Client(rig.port, "bbt-collector", credentials.COLLECTOR_USER, rig.collector_pw)
    assert spy.accepted and not spy.subscribe("bbt/#").is_failure
    pc1 = Client(rig.port, "pc-1", "pc-1", rig.pw["pc-1"])
    # subscriptions: bbt/#, another PC's commands and events are refused; its own cmd and the policy are not
    for topic in ("bbt/#", "#", "bbt/v1/s1/+/cmd", "bbt/v1/s1/pc-2/cmd", "bbt/v1/s1/pc-2/events", "bbt/v1/s2/policy"):
        assert pc1.subscribe(topic).is_failure, topic
    for topic in ("bbt/v1/s1/pc-1/cmd", "bbt/v1/s1/policy"):
        assert not pc1.subscribe(topic).is_failure, topic
    forged = ["bbt/v1/s1/pc-2/events", "bbt/v1/s1/pc-2/status", "bbt/v1/s1/policy", "bbt/v1/s1/pc-2/cmd",
              "bbt/v1/s1/pc-1/cmd", "bbt/v1/s2/pc-1/events", "other/topic"]
    for topic in forged:
        pc1.publish(topic, b'{"forged":true}', retain=True)
    pc1.publish("bbt/v1/s1/pc-1/events", b'{"own":true}')
    wait_for(lambda: any(t == "bbt/v1/s1/pc-1/events" for t, _ in spy.messages), 5, what="pc-1's own event")
    time.sleep(0.3)
    assert [t for t, _ in spy.messages] == ["bbt/v1/s1/pc-1/events"], spy.messages
    # nothing forged was retained: a new subscriber gets no retained policy or status of pc-2
    late = Client(rig.port, "late", credentials.COLLECTOR_USER, rig.collector_pw)
    late.subscribe("bbt/#")
    time.sleep(0.3)
    assert late.messages == []
    # the collector's commands and policy reach pc-1; pc-2's commands do not
    spy.publish("bbt/v1/s1/pc-1/cmd", b'{"for":"pc-1"}')
    spy.publish("bbt/v1/s1/pc-2/cmd", b'{"for":"pc-2"}')
    spy.publish("bbt/v1/s1/policy", b'{"policy":1}', retain=True)
    wait_for(lambda: len(pc1.messages) >= 2, 5, what="pc-1's command and policy")
    time.sleep(0.3)
    assert sorted(t for t, _ in pc1.messages) == ["bbt/v1/s1/pc-1/cmd", "bbt/v1/s1/policy"]
    for c in (spy, pc1, late):
        c.close()


def test_mosquitto_sub_with_pc_credentials_cannot_read_the_school(rig: Rig) -> None:
    r = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(rig.port), "-i", "pc-1", "-u", "pc-1",
                        "-P", rig.pw["pc-1"], "-t", "bbt/#", "-C", "1", "-W", "3"], capture_output=True, text=True,
                       timeout=20)
    assert r.stdout == "", r  # the SUBACK refuses it: nothing is read


def test_a_will_on_another_topic_is_refused(rig: Rig) -> None:
    c = Client(rig.port, "pc-1", "pc-1", rig.pw["pc-1"], will="bbt/v1/s1/pc-2/status")
    assert not c.accepted
    c.close()


def test_a_revoked_pc_is_cut_off(rig: Rig) -> None:
    pc1 = Client(rig.port, "pc-1", "pc-1", rig.pw["pc-1"])
    pc2 = Client(rig.port, "pc-2", "pc-2", rig.pw["pc-2"])
    assert pc1.accepted and pc2.accepted
    pc1.c.reconnect_delay_set(60, 60)  # keep paho from reconnecting during the check
    credentials.revoke(rig.db, "s1", "pc-1", "test")
    assert pc1.disconnected.wait(10), "the revoked PC's connection was not dropped"
    assert not pc2.disconnected.is_set()
    again = Client(rig.port, "pc-1", "pc-1", rig.pw["pc-1"])
    assert not again.accepted
    with pytest.raises(credentials.CredentialError, match="revoked"):
        credentials.provision(rig.db, "s1", "pc-1", "test")
    for c in (pc1, pc2, again):
        c.close()


def test_wrong_credentials_with_an_online_pcs_id_change_nothing(rig: Rig) -> None:
    """A refused CONNECT must not take over, wipe or re-will the session of the PC whose id it uses."""
    pc1 = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pc-1", clean_session=False,
                      protocol=mqtt.MQTTv311)
    pc1.username_pw_set("pc-1", rig.pw["pc-1"])
    pc1.will_set("bbt/v1/s1/pc-1/status", b'{"online":false}', qos=1, retain=True)
    dropped = threading.Event()
    pc1.on_disconnect = lambda *a: dropped.set()
    pc1.reconnect_delay_set(60, 60)
    pc1.connect("127.0.0.1", rig.port)
    pc1.loop_start()
    wait_for(lambda: pc1.is_connected(), 10, what="pc-1 connected")
    for clean in (False, True):
        bad = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pc-1", clean_session=clean,
                          protocol=mqtt.MQTTv311, reconnect_on_failure=False)
        bad.username_pw_set("pc-1", "wrong")
        bad.will_set("bbt/v1/s1/policy", b'{"software":{"deny":["*"],"action":"block"}}', qos=1, retain=True)
        rc: list[Any] = []
        bad.on_connect = lambda c, u, f, r, p=None, got=rc: got.append(r)
        bad.connect("127.0.0.1", rig.port)
        bad.loop_start()
        wait_for(rc.copy, 10, what="the refusal")
        assert rc[0].is_failure
        bad.loop_stop()
        release_sockets(bad)
    time.sleep(0.5)
    assert not dropped.is_set(), "a refused client with pc-1's id dropped pc-1's connection"
    spy = Client(rig.port, "spy", credentials.COLLECTOR_USER, rig.collector_pw)
    spy.subscribe("bbt/#")
    time.sleep(0.3)
    assert [t for t, _ in spy.messages] == [], "something was published for the refused client"
    pc1.loop_stop()  # now pc-1 goes away abnormally: its own Last Will, on its own topic, is published
    sock = pc1.socket()
    assert sock is not None
    sock.close()
    wait_for(lambda: spy.messages, 10, what="pc-1's Last Will")
    assert [t for t, _ in spy.messages] == ["bbt/v1/s1/pc-1/status"]
    release_sockets(pc1)
    spy.close()
