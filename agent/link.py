"""The agent's MQTT session, run by the agent's loop (:mod:`agent.loop`): paho without a thread.

- Connects, and reconnects with backoff (1 s doubling to 60 s); a broker that is down never
  stops the probes for longer than one connection attempt (``CONNECT_TIMEOUT_S``).
- Retained status: ``online`` birth with the boot id on every connect, the Last Will ``lost``
  (set by the agent before the first connect), ``shutdown`` on a clean stop.
- Subscribes in on_connect; incoming messages are handed to the agent after paho's callback.
- Delivers the outbox oldest first, one message (up to 500 events) in flight at a time; an event
  leaves the outbox only when the broker acknowledged it (PUBACK). A message handed to paho is
  never handed again in this process: after a reconnect paho sends it again itself (DUP), so
  the broker sees each event once. A backlog (after days offline) goes out at ``replay_rate``
  messages a second.
"""
from __future__ import annotations

import collections
import logging
import select
import threading
from typing import Any, Callable, Deque, List, Optional, Set, Tuple

from agent.loop import Source
from agent.outbox import Outbox

log = logging.getLogger(__name__)

MIN_DELAY_S, MAX_DELAY_S = 1.0, 60.0
CONNECT_TIMEOUT_S = 5.0
MISC_EVERY_S = 15.0  # paho's keepalive check, at most this often (the keepalive is 120 s)
ACK_WAIT_S = 0.05  # how long the loop waits, right after sending, for the broker's PUBACK
STATUS_WAIT_S = 3.0  # at a clean stop: how long to wait for the broker to take the 'shutdown' status


class Link(Source):
    def __init__(self, client: Any, host: str, port: int, keepalive: int, outbox: Outbox, events_topic: str,
                 clock: Callable[[], float], on_connected: Callable[[Any], None],
                 on_message: Callable[[str, bytes], None], replay_rate: float = 20.0,
                 on_refused: Callable[[Any], None] = lambda rc: None) -> None:
        self.client = client
        self.outbox = outbox
        self.events_topic = events_topic
        self.clock = clock
        self.on_connected = on_connected  # publishes the birth and subscribes (paho's on_connect)
        self.handle_message = on_message
        self.on_refused = on_refused  # the broker refused our credentials (agent: re-enrol if it may)
        self.replay_gap = 1.0 / max(replay_rate, 0.1)
        self.keepalive = keepalive
        self.connected = threading.Event()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.connect_timeout = CONNECT_TIMEOUT_S
        client.connect_async(host, port, keepalive)  # only stores where to: the loop connects
        self._reconnect_at = clock()
        self._delay = MIN_DELAY_S
        self._failing = False
        self._inflight: Optional[Tuple[int, List[int]]] = None  # (mid, outbox seqs) handed to paho
        self._acked: Set[int] = set()
        self._next_send = 0.0
        self._misc_at = clock()
        self._incoming: Deque[Tuple[str, bytes]] = collections.deque()
        self._closing: Optional[_Closing] = None

    # -- paho's callbacks (in the loop's thread, inside paho): note, never block ---------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            (log.debug if self._failing else log.error)("broker refused the agent: %s", rc)
            self._failing = True
            self._delay = min(self._delay * 2, MAX_DELAY_S)  # refused: back off, as for an unreachable broker
            self.on_refused(rc)
            return
        self._delay = MIN_DELAY_S
        self._failing = False
        self.connected.set()
        self.on_connected(client)
        log.info("agent connected to broker")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self._reconnect_at = self.clock() + self._delay
        if was and self._closing is None:
            log.warning("disconnected from broker (%s); reconnecting with backoff", rc)

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any = None, props: Any = None) -> None:
        if (self._inflight is not None and mid == self._inflight[0]) or \
                (self._closing is not None and mid == self._closing.mid):
            self._acked.add(mid)  # (the birth's and the command acks' PUBACKs matter to nobody)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        self._incoming.append((msg.topic, bytes(msg.payload)))

    # -- the loop's Source ---------------------------------------------------------------
    def poll(self) -> Tuple[Any, Any, Optional[float]]:
        sock = self.client.socket()
        wake = self._misc_at + self.keepalive / 2.0
        if sock is None:
            if not self._closed():
                wake = min(wake, self._reconnect_at)
        elif _tls_pending(sock):
            wake = self.clock()  # decrypted bytes wait in the socket object, not the kernel
        if self._inflight is None and self.outbox.pending and self.connected.is_set():
            wake = min(wake, self._next_send)
        if self._closing is not None:
            wake = min(wake, self._closing.deadline)
        return sock, (sock if sock is not None and self.client.want_write() else None), wake

    def on_read(self) -> None:
        self.client.loop_read()
        sock = self.client.socket()
        while sock is not None and _tls_pending(sock):
            if self.client.loop_read():
                break
            sock = self.client.socket()

    def on_write(self) -> None:
        self.client.loop_write()

    def on_time(self, now: float) -> None:
        if self.client.socket() is not None:
            if now - self._misc_at >= MISC_EVERY_S:  # keepalive: a ping only when nothing else went out
                self._misc_at = now
                self.client.loop_misc()
        elif now >= self._reconnect_at and not self._closed():
            self._connect(now)
        if self._acked:
            self._settle(now)
        if self.pump(now) and self._await_ack():
            self._settle(now)
        while self._incoming:
            topic, payload = self._incoming.popleft()
            self.handle_message(topic, payload)
        if self._closing is not None:
            self._closing.step(self, now)

    def _await_ack(self) -> bool:
        """Wait a moment for the PUBACK of what was just sent: on a school's network it comes within
        a millisecond or two, and taking it now costs far less than a wake-up of its own."""
        sock = self.client.socket()
        if sock is None:
            return False
        try:
            readable = select.select([sock], [], [], ACK_WAIT_S)[0]
        except (OSError, ValueError):
            return False
        if readable:
            self.on_read()
        return bool(readable)

    # -- connecting ----------------------------------------------------------------------
    def retry_now(self) -> None:
        """New credentials: connect again at once, not after the backoff (in the loop's thread)."""
        self._delay = MIN_DELAY_S
        self._reconnect_at = self.clock()

    def _connect(self, now: float) -> None:
        try:
            self.client.reconnect()
        except Exception as e:  # refused, unreachable, TLS handshake failed, name not found
            (log.debug if self._failing else log.warning)(
                "cannot reach the broker (%s: %s); retrying in %.0f s", type(e).__name__, e, self._delay)
            self._failing = True
            self._reconnect_at = now + self._delay
            self._delay = min(self._delay * 2, MAX_DELAY_S)

    # -- delivering the outbox -------------------------------------------------------------
    def _settle(self, now: float) -> None:
        """Forget what the broker acknowledged."""
        if self._inflight is not None and self._inflight[0] in self._acked:
            mid, seqs = self._inflight
            self._acked.discard(mid)
            self._inflight = None
            self.outbox.remove(seqs, defer=True)
            if self.outbox.pending:  # a backlog: replay at a bounded rate
                self._next_send = now + self.replay_gap

    def pump(self, now: float) -> bool:
        """Hand the oldest events to paho when nothing is in flight; True when something was sent."""
        if self._inflight is not None or not self.connected.is_set() or not self.outbox.pending \
                or now < self._next_send:
            return False
        batch = self.outbox.next_batch()
        if not batch:
            return False
        # stored as protocol.dumps writes it: sent as it is, an array when there are several
        payload = batch[0][1] if len(batch) == 1 else b"[" + b",".join(raw for _, raw in batch) + b"]"
        info = self.client.publish(self.events_topic, payload, qos=1)
        self._inflight = (info.mid, [s for s, _ in batch])
        return True

    def in_flight(self) -> bool:
        return self._inflight is not None

    # -- a clean stop ------------------------------------------------------------------------
    def close(self, flush_s: float, status: bytes, status_topic: str, done: Callable[[], None]) -> None:
        """Deliver what is queued (up to ``flush_s``), publish the retained ``shutdown`` status,
        disconnect, then call ``done``. In the loop's thread."""
        self._closing = _Closing(self.clock() + flush_s, status, status_topic, done)

    def _closed(self) -> bool:
        return self._closing is not None and self._closing.phase != "flush"

    def acked(self, mid: int) -> bool:
        if mid in self._acked:
            self._acked.discard(mid)
            return True
        return False


def _tls_pending(sock: Any) -> bool:
    """A TLS socket holding decrypted bytes that select() cannot see."""
    pending = getattr(sock, "pending", None)
    return pending is not None and pending() > 0


class _Closing:
    def __init__(self, deadline: float, status: bytes, topic: str, done: Callable[[], None]) -> None:
        self.deadline, self.status, self.topic, self.done = deadline, status, topic, done
        self.phase = "flush"
        self.mid: Optional[int] = None

    def step(self, link: Link, now: float) -> None:
        up = link.connected.is_set()
        if self.phase == "flush":
            if up and (link.outbox.pending or link.in_flight()) and now < self.deadline:
                return
            if not up:
                return self._finish(link)
            self.mid = link.client.publish(self.topic, self.status, qos=1, retain=True).mid
            self.phase, self.deadline = "status", now + STATUS_WAIT_S
        if self.phase == "status" and (not up or now >= self.deadline or link.acked(self.mid or -1)):
            self._finish(link)

    def _finish(self, link: Link) -> None:
        self.phase = "done"
        if link.client.socket() is not None:
            link.client.disconnect()
        self.done()
