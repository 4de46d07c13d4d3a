"""A paho-mqtt client that reads the socket in large chunks.

paho reads each packet with several ``recv`` calls (1 byte of command, 1 per length byte, then
the body) and handles one packet per ``select()``. At thousands of small QoS 1 messages a second
that is most of the collector's CPU. This subclass serves those reads from a 64 KiB buffer and
keeps handling packets while the buffer holds some. Everything else is paho's own code; the
buffer is dropped whenever paho closes the socket, so a reconnect starts clean.

:meth:`BufferedReadClient.ack_many` acknowledges a committed batch with one wake-up of paho's
network thread instead of one per message.
"""
from __future__ import annotations

import threading
from typing import Any, Iterable

import paho.mqtt.client as mqtt

CHUNK = 65536


class BufferedReadClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bbt_rbuf = bytearray()
        self._bbt_quiet = threading.local()

    def ack_many(self, acks: Iterable[tuple[int, int]]) -> None:
        """Like ``ack(mid, qos)`` for each, waking the network thread once at the end."""
        self._bbt_quiet.on = True
        try:
            for mid, qos in acks:
                self.ack(mid, qos)
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
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._bbt_rbuf and self._sock is not None:
            rc = super().loop_read(max_packets)
        return rc

    def _sock_close(self) -> None:
        self._bbt_rbuf.clear()
        super()._sock_close()
