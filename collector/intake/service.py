"""The collector: MQTT in, one writer thread, batched durable commits, acknowledge after commit.

paho's callbacks only enqueue (they never block or raise). The writer takes up to
``batch_size`` messages or waits ``batch_ms``, commits them in one transaction and only then
sends PUBACK for each (``manual_ack``), so a collector killed at any moment loses nothing
the broker accepted: unacknowledged messages are redelivered on the persistent session.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable

import protocol
from collector import migrations
from collector.db import Database, connect
from collector.devices.ingest import Incoming, Prepared, prepare
from collector.intake.store import BatchResult, apply_batch
from common.mqttconf import BrokerConfig, make_client, release_sockets

log = logging.getLogger(__name__)

SUBSCRIPTIONS = (f"{protocol.PREFIX}/+/+/status", f"{protocol.PREFIX}/+/+/events", f"{protocol.PREFIX}/+/+/cmd/ack")


def is_transient(e: BaseException) -> bool:
    """The store is unavailable (locked, disk full, I/O, connection lost): retry the same batch later."""
    return isinstance(e, OSError) or type(e).__name__ in ("OperationalError", "InterfaceError", "DatabaseError")


class Collector:
    def __init__(self, db_url: str | None, broker: BrokerConfig, client_id: str = "bbt-collector",
                 batch_size: int = 500, batch_ms: int = 50, share_group: str | None = None,
                 ack_handler: Callable[[Database, Prepared], None] | None = None) -> None:
        self.db = connect(db_url)
        migrations.migrate(self.db)
        self.broker = broker
        self.client_id = client_id
        self.batch_size = batch_size
        self.batch_ms = batch_ms
        self.share_group = share_group
        if ack_handler is None:
            from collector.devices.commands import handle_ack as ack_handler
        self.ack_handler = ack_handler
        self.connections = 0  # successful connections so far (maintenance republishes on a new one)
        self.totals = BatchResult()
        self.connected = threading.Event()
        self._q: queue.SimpleQueue[Incoming] = queue.SimpleQueue()  # C-implemented: cheap put from paho
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: Any = None
        self._listeners: list[Callable[[list[Prepared], BatchResult], None]] = []

    def add_listener(self, fn: Callable[[list[Prepared], BatchResult], None]) -> None:
        """Call ``fn(prepared, result)`` after every stored batch (on the writer thread; errors are logged)."""
        self._listeners.append(fn)

    # -- MQTT side: enqueue only -------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker refused the collector: %s", rc)
            return
        prefix = f"$share/{self.share_group}/" if self.share_group else ""
        client.subscribe([(prefix + t, 1) for t in SUBSCRIPTIONS])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reason_codes: Any, props: Any = None) -> None:
        """Connected means subscribed: until the broker's SUBACK, what devices publish is not ours."""
        refused = [rc for rc in reason_codes if rc.is_failure]
        if refused:
            log.error("broker refused the collector's subscriptions: %s", ", ".join(str(rc) for rc in refused))
            return
        self.connections += 1
        self.connected.set()
        log.info("collector connected to %s", self.broker.url)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("collector lost the broker (%s); reconnecting", rc)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        """paho's callback, for what fastmqtt leaves to paho: one message through ``_on_publishes``."""
        self._on_publishes([(bytes(msg._topic), bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain))])

    def _on_publishes(self, published: list[tuple[bytes, bytes, int, int, bool]]) -> None:
        """fastmqtt's sink: every message of one read onto the queue, received now."""
        now, put = time.time(), self._q.put
        for topic, payload, mid, qos, retain in published:
            try:
                text = topic.decode("utf-8")
            except UnicodeDecodeError:  # brokers check topics are UTF-8; quarantine it if one did not
                text = topic.decode("utf-8", errors="backslashreplace")
            put(Incoming(text, payload, now, mid, qos, retain))

    # -- writer side ---------------------------------------------------------
    def _take_batch(self) -> list[Incoming]:
        try:
            first = self._q.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_ms / 1000
        get_nowait = self._q.get_nowait
        while len(batch) < self.batch_size:
            try:
                batch.append(get_nowait())  # what is already there, without timers
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._q.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def commit(self, batch: list[Incoming]) -> BatchResult:
        """Validate and store a batch, retrying on database errors until it is stored."""
        prepared = [prepare(m) for m in batch]
        delay = 0.1
        while True:
            try:
                res = self._store(prepared)
                break
            except Exception as e:  # disk full, locked, PostgreSQL down: keep the messages unacked
                log.error("could not store a batch of %d messages (%s); retrying in %.1fs", len(batch), e, delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, 5.0)
        self.totals.add(res)
        for listener in self._listeners:
            try:
                listener(prepared, res)
            except Exception:
                log.exception("batch listener failed")
        return res

    @property
    def _counter_shard(self) -> str | None:
        return self.client_id if self.share_group else None

    def _store(self, prepared: list[Prepared]) -> BatchResult:
        """apply_batch; when a batch fails for a reason other than the store being unavailable, store its
        messages one by one and quarantine the one that cannot be stored (code 'internal'), so one
        poisonous message never stops ingest."""
        try:
            return apply_batch(self.db, prepared, self.ack_handler, counter_shard=self._counter_shard)
        except Exception as e:
            if is_transient(e):
                raise
            if len(prepared) > 1:
                total = BatchResult()
                for p in prepared:
                    total.add(self._store([p]))
                return total
            p = prepared[0]
            log.error("quarantining a message on %r that could not be stored: %s", p.msg.topic[:200], e)
            bad = Prepared("rejected", p.msg, code="internal", reason=f"cannot store: {type(e).__name__}: {e}")
            return apply_batch(self.db, [bad], self.ack_handler, counter_shard=self._counter_shard)

    def _run_writer(self) -> None:
        while not (self._stop.is_set() and self._q.empty()):
            batch = self._take_batch()
            if not batch:
                continue
            self.commit(batch)
            client = self._client
            if client is not None:
                acks = [(m.mid, m.qos) for m in batch if m.qos]
                if hasattr(client, "ack_many"):
                    client.ack_many(acks)
                else:
                    for mid, qos in acks:
                        client.ack(mid, qos)

    # -- lifecycle -----------------------------------------------------------
    def make_client(self) -> Any:
        """The collector's MQTT client with its callbacks (not yet connected); kept as ``self.client``."""
        from collector.intake.fastmqtt import BufferedReadClient

        self._client = client = make_client(self.broker, self.client_id, clean_session=False, manual_ack=True,
                                            client_class=BufferedReadClient)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.publish_sink = self._on_publishes
        client.max_inflight_messages_set(1000)
        return client

    def start(self) -> None:
        self.make_client()
        self._writer = threading.Thread(target=self._run_writer, name="bbt-writer", daemon=True)
        self._writer.start()
        self._client.connect_async(self.broker.host, self.broker.port, self.broker.keepalive)
        self._client.loop_start()

    def stop(self) -> None:
        self._stop.set()
        if self._writer:
            self._writer.join(10)
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            release_sockets(self._client)
        self.db.close()

    @property
    def client(self) -> Any:
        return self._client
