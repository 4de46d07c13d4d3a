"""A paho-mqtt client that reads the socket in large chunks and takes PUBLISH packets out in bulk.

paho reads each packet with several ``recv`` calls (1 byte of command, 1 per length byte, then
the body), handles one packet per ``select()`` and builds an ``MQTTMessage`` and a callback per
message. At thousands of small QoS 1 messages a second that is most of the collector's CPU. This
subclass serves those reads from a 64 KiB buffer and keeps handling packets while the buffer
holds some. With :attr:`BufferedReadClient.publish_sink` set, it also parses every complete
QoS 0/1 PUBLISH at the front of the buffer itself and hands them to the sink as one list per
chunk: ``sink([(topic bytes, payload bytes, mid, qos, retain), ...])`` on paho's network thread.
Anything else (CONNACK, SUBACK, PINGRESP, QoS 2, MQTT 5, a packet cut by the chunk's end, a
malformed packet) is left in the buffer for paho's own code, which reads it from there as before.
Packets keep their order: the sink and ``on_message`` run on the same thread, one after the other.
The sink replaces ``on_message`` *and* topic-filtered callbacks for the packets it takes, and it is
used only with ``manual_ack`` (a QoS 1 message is then never acknowledged before the owner says so).
The buffer is dropped whenever paho closes the socket, so a reconnect starts clean.

:meth:`BufferedReadClient.ack_many` acknowledges a committed batch with one packet (all its
PUBACKs back to back) and one wake-up of paho's network thread, instead of one of each per message.
"""
from __future__ import annotations

import struct
import threading
from typing import Any, Callable, Iterable

import paho.mqtt.client as mqtt

CHUNK = 65536
PUBLISH, PUBACK = 0x30, 0x40
_PUBACK = struct.Struct("!BBH")

Published = tuple[bytes, bytes, int, int, bool]  # topic, payload, mid, qos, retain


def take_publishes(buf: bytearray) -> tuple[list[Published], int]:
    """The complete QoS 0/1 MQTT 3.1.1 PUBLISH packets at the front of ``buf``, and the bytes they span.

    Stops at the first packet that is anything else, incomplete or malformed (paho's code handles it)."""
    out: list[Published] = []
    n, pos = len(buf), 0
    while pos + 4 <= n:
        header = buf[pos]
        if header & 0xF6 != PUBLISH and header & 0xF6 != PUBLISH | 0x02:  # PUBLISH, QoS 0 or 1 (dup ignored)
            break
        i, length, shift = pos + 1, 0, 0
        while True:  # remaining length: 1-4 bytes of 7 bits, low first
            b = buf[i]
            length |= (b & 0x7F) << shift
            i += 1
            if not b & 0x80 or shift == 21 or i >= n:
                break
            shift += 7
        end = i + length
        if b & 0x80 or end > n or length < 2:
            break  # malformed (paho says so) or not all here yet
        topic_end = i + 2 + (buf[i] << 8 | buf[i + 1])
        if header & 0x02:
            body = topic_end + 2
            mid = buf[topic_end] << 8 | buf[topic_end + 1] if body <= end else 0
        else:
            body, mid = topic_end, 0
        if topic_end == i + 2 or body > end:
            break  # an empty topic (not allowed in 3.1.1) or lengths that do not add up: paho's error
        out.append((bytes(buf[i + 2:topic_end]), bytes(buf[body:end]), mid, (header >> 1) & 3, bool(header & 1)))
        pos = end
    return out, pos


class BufferedReadClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bbt_rbuf = bytearray()
        self._bbt_quiet = threading.local()
        self.publish_sink: Callable[[list[Published]], None] | None = None

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> None:
        """Like ``ack(mid, qos)`` for each: the PUBACKs go out as one write, after one wake-up."""
        if not self._manual_ack:
            return
        pubacks = bytearray()
        self._bbt_quiet.on = True
        try:
            for mid, qos in acks:
                if qos == 1:
                    pubacks += _PUBACK.pack(PUBACK, 2, mid)
                else:
                    self.ack(mid, qos)
            if pubacks:
                self._packet_queue(PUBACK, bytes(pubacks), 0, 1)
        finally:
            self._bbt_quiet.on = False
        w = self._sockpairW
        if w is not None:
            try:
                w.send(b"0")
            except (BlockingIOError, OSError):
                pass

    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: mqtt.MQTTMessageInfo | None = None) -> mqtt.MQTTErrorCode:
        if getattr(self._bbt_quiet, "on", False):  # queued without the per-packet wake-up (ack_many)
            self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                     "to_process": len(packet), "packet": packet, "info": info})
            return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_queue(command, packet, mid, qos, info)

    def _sock_recv(self, bufsize: int) -> bytes:
        buf = self._bbt_rbuf
        if not buf:
            chunk = super()._sock_recv(max(bufsize, CHUNK))  # BlockingIOError / ConnectionError propagate
            if not chunk:
                return chunk  # closed by the broker: paho handles it
            if len(chunk) <= bufsize:
                return chunk
            buf += chunk
        out = bytes(buf[:bufsize])
        del buf[:bufsize]
        return out

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        if self._sock is None:
            return super().loop_read(max_packets)  # MQTT_ERR_NO_CONN
        if self._fast() and not self._bbt_rbuf:
            try:  # fill the buffer here, so that the chunk's first packet takes the fast path too
                chunk = super()._sock_recv(CHUNK)
            except BlockingIOError:
                return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS  # what paho returns when nothing is there
            except OSError:
                chunk = b""
            if not chunk:  # closed or failed: paho's own read meets it again and handles it (reconnects)
                return super().loop_read(max_packets)
            self._bbt_rbuf += chunk
        rc = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        while self._sock is not None:
            if self._fast():
                self._take_publishes()
                if not self._bbt_rbuf:
                    break
            rc = super().loop_read(max_packets)
            if rc != mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS or not self._bbt_rbuf:
                break
        return rc

    def _fast(self) -> bool:
        """The sink takes PUBLISH packets now: set, acknowledged by its owner, MQTT 3, paho between packets."""
        return (self.publish_sink is not None and self._manual_ack and self._protocol != mqtt.MQTTv5
                and self._in_packet["command"] == 0)

    def _take_publishes(self) -> None:
        assert self.publish_sink is not None
        got, used = take_publishes(self._bbt_rbuf)
        if not used:
            return
        del self._bbt_rbuf[:used]
        with self._msgtime_mutex:  # keepalive: the broker was heard from
            self._last_bytes_received = mqtt.time_func()
        self.publish_sink(got)

    def _sock_close(self) -> None:
        self._bbt_rbuf.clear()
        super()._sock_close()
