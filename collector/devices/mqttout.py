"""Publishing a few messages from a short-lived client (the CLI's `bbt policy set`, `bbt cmd`)."""
from __future__ import annotations

import secrets
import threading
from typing import Any, Callable, Sequence

from common.errors import BbtError
from common.mqttconf import BrokerConfig, make_client

# (topic, payload, retain) -> None; publishes at QoS 1. The one signature every sender has.
Send = Callable[[str, bytes, bool], None]


class PublishError(BbtError):
    pass


def publish_all(cfg: BrokerConfig, messages: Sequence[tuple[str, bytes, bool]], timeout: float = 10.0) -> None:
    """Connect, publish every message at QoS 1, wait for each PUBACK, disconnect. Raises PublishError."""
    client = make_client(cfg, f"bbt-cli-{secrets.token_hex(4)}")
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive)
    except OSError as e:
        raise PublishError(f"cannot reach the broker at {cfg.url}: {e}") from None
    client.loop_start()
    try:
        if not connected.wait(timeout) or refused:
            raise PublishError(f"the broker at {cfg.url} did not accept the connection"
                               f"{': ' + refused[0] if refused else ''}")
        infos = [client.publish(topic, payload, qos=1, retain=retain) for topic, payload, retain in messages]
        for info in infos:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise PublishError(f"the broker at {cfg.url} did not acknowledge a message within {timeout:.0f}s")
    finally:
        client.disconnect()
        client.loop_stop()


def client_sender(client: Any, timeout: float = 10.0) -> Send:
    """A Send over an already connected paho client (the collector's own)."""
    def send(topic: str, payload: bytes, retain: bool) -> None:
        info = client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise PublishError(f"a message on {topic} was not acknowledged within {timeout:.0f}s")
    return send
