"""QoS 1 through the embedded broker (amqtt) as MQTT 3.1.1 §4.3.2 and §4.4 say, where amqtt falls short.

bbt's broker (collector.intake.broker_auth ClosedBroker) uses what is here:

* A PUBLISH sent to a subscriber leaves the session's in-flight store when its PUBACK does not come
  within 5 s or when the connection drops, so a collector killed before it acknowledged (it acknowledges
  after its commit) never gets those messages again. ``DurableHandler`` keeps the message in flight until
  its PUBACK (waiting up to PUBACK_WAIT_S, then leaving it in flight); amqtt's own ``_retry_deliveries``
  sends it again (DUP) when the session reconnects.
* A publisher's PUBLISH is acknowledged once queued in its session, and amqtt stops forwarding that queue
  when the publisher disconnects: the acknowledged tail of a burst that ends with a DISCONNECT (an agent
  that exits) was lost. ``forward_accepted`` forwards it. Left: amqtt also cancels its handling of
  PUBLISHes it has read but not yet queued (nor acknowledged) when the connection ends; a publisher that
  disconnects before all its PUBACKs came (seen with ``mosquitto_pub -l`` under load) can lose those. bbt's agent
  keeps each event in its outbox until the broker's PUBACK; Mosquitto has neither gap.

tests/test_broker_durable.py checks it against amqtt itself and fails with a clear message when the
amqtt internals used here change.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OUTGOING

log = logging.getLogger(__name__)
PUBACK_WAIT_S = 60.0  # amqtt: 5 s, then forgotten; the collector acknowledges after its commit


class DurableHandler(BrokerProtocolHandler):
    """amqtt's broker-side handler, with outgoing QoS 1 messages kept in flight until acknowledged."""

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction != OUTGOING or self.session is None or app_message.puback_packet:
            await super()._handle_qos1_message_flow(app_message)
            return
        pid = app_message.packet_id
        self.session.inflight_out[pid] = app_message
        packet = app_message.build_publish_packet(dup=app_message.publish_packet is not None)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._puback_waiters[pid] = waiter
        try:
            await self._send_packet(packet)
            app_message.publish_packet = packet
            app_message.puback_packet = await asyncio.wait_for(waiter, PUBACK_WAIT_S)
        except TimeoutError:  # kept in flight: sent again (DUP) when the session reconnects
            log.warning("no PUBACK from %s for message %s in %.0f s", self.session.client_id, pid, PUBACK_WAIT_S)
            return
        finally:
            self._puback_waiters.pop(pid, None)
        self.session.inflight_out.pop(pid, None)  # only now: acknowledged


async def forward_accepted(broker: Any, session: Any, handler: Any) -> int:
    """Forward what ``session`` published, was acknowledged and queued, but not yet forwarded when its
    connection ended (amqtt stops its forwarding loop then); returns how many messages."""
    queue = session.delivered_message_queue
    n = 0
    while not queue.empty():
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(queue.get_nowait())
        try:
            await broker._handle_message_delivery(session, handler, done)
        except Exception:  # never let one message stop the rest or the broker
            log.exception("forwarding a message of %s after its disconnection failed", session.client_id)
        n += 1
    if n:
        log.info("forwarded %d message(s) %s published before it disconnected", n, session.client_id)
    return n
