"""QoS 1 through the embedded broker: what it acknowledged reaches the collector, even when the publisher
leaves right after its burst, and what the collector did not acknowledge before it died comes again
(collector.intake.broker_durable)."""
from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session

from collector.intake import credentials
from collector.intake.broker_durable import DurableHandler
from common.mqttconf import release_sockets
from tests.brokers import EmbeddedRig as Rig
from tests.helpers import wait_for

TOPIC = "bbt/v1/s1/pc-1/events"


class Collector:
    """Subscribes as the collector does (persistent session, QoS 1); acknowledges only when told to."""

    def __init__(self, rig: Rig, ack: bool = True) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bbt-collector", clean_session=False,
                             protocol=mqtt.MQTTv311, manual_ack=not ack, reconnect_on_failure=False)
        self.c.username_pw_set(credentials.COLLECTOR_USER, rig.collector_pw)
        self.got: list[tuple[bytes, bool]] = []  # payload, dup flag
        self.subscribed = threading.Event()
        self.c.on_message = lambda c, u, m: self.got.append((bytes(m.payload), bool(m.dup)))
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("bbt/v1/+/+/events", 1)
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        self.c.connect("127.0.0.1", rig.port)
        self.c.loop_start()
        assert self.subscribed.wait(10), "the collector's SUBACK"

    def payloads(self) -> set[bytes]:
        return {p for p, _dup in self.got}

    def die(self) -> None:
        """Gone without a DISCONNECT, as a killed process is."""
        self.c.loop_stop()
        sock = self.c.socket()
        assert sock is not None
        sock.close()
        release_sockets(self.c)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        release_sockets(self.c)


def test_every_acknowledged_message_of_a_burst_that_ends_with_a_disconnect_arrives(rig: Rig) -> None:
    collector = Collector(rig)
    pc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pc-1", protocol=mqtt.MQTTv311)
    pc.username_pw_set("pc-1", rig.pw["pc-1"])
    pc.max_inflight_messages_set(1000)
    pc.connect("127.0.0.1", rig.port)
    pc.loop_start()
    sent = [f'{{"n":{i}}}'.encode() for i in range(3000)]
    try:
        for info in [pc.publish(TOPIC, p, qos=1) for p in sent]:
            info.wait_for_publish(30)  # the broker's PUBACK: accepted
        pc.disconnect()  # at once, as an agent that exits (or `mosquitto_pub -l` at its end) does
        pc.loop_stop()
        wait_for(lambda: collector.payloads() == set(sent), 20,
                 what=f"every acknowledged message forwarded ({len(collector.payloads())} of {len(sent)})")
        assert len(collector.got) == len(sent), "each forwarded once"
    finally:
        release_sockets(pc)
        collector.close()


def test_what_a_dead_collector_did_not_acknowledge_comes_again(rig: Rig) -> None:
    first = Collector(rig, ack=False)  # receives, never acknowledges (dies before its commit)
    pc = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pc-1", protocol=mqtt.MQTTv311)
    pc.username_pw_set("pc-1", rig.pw["pc-1"])
    pc.connect("127.0.0.1", rig.port)
    pc.loop_start()
    sent = {f'{{"n":{i}}}'.encode() for i in range(20)}
    try:
        for p in sorted(sent):
            pc.publish(TOPIC, p, qos=1).wait_for_publish(5)
        wait_for(lambda: first.payloads() == sent, 10, what="the messages delivered to the first collector")
        first.die()
        later = f'{{"n":{99}}}'.encode()
        pc.publish(TOPIC, later, qos=1).wait_for_publish(5)  # while it is away: kept for its session
        second = Collector(rig)
        try:
            wait_for(lambda: second.payloads() == sent | {later}, 20,
                     what=f"the unacknowledged messages again ({len(second.payloads())} of {len(sent) + 1})")
            assert all(dup for p, dup in second.got if p in sent), "sent again with DUP set"
        finally:
            second.close()
    finally:
        pc.loop_stop()
        pc.disconnect()
        release_sockets(pc)


def test_the_amqtt_internals_relied_on_are_there() -> None:
    """broker_durable overrides or calls these; a new amqtt that renamed them must fail here, by name."""
    for owner, name in [(BrokerProtocolHandler, "_handle_qos1_message_flow"), (BrokerProtocolHandler, "_send_packet"),
                        (BrokerProtocolHandler, "_retry_deliveries"), (BrokerProtocolHandler, "init_from_connect"),
                        (Broker, "_client_message_loop"), (Broker, "_handle_message_delivery")]:
        assert callable(getattr(owner, name, None)), f"amqtt's {owner.__name__}.{name} is gone: see broker_durable"
    assert issubclass(DurableHandler, BrokerProtocolHandler)
    session = Session()
    for attr in ("inflight_out", "delivered_message_queue"):
        assert hasattr(session, attr), f"amqtt's Session.{attr} is gone: see broker_durable"
