"""Stored batches told to another process on this computer: `bbt server` stores in its ingest process
and runs the alert engine in its web process (bbt.processes).

One UDP datagram on loopback per stored batch, naming the schools in it (JSON list). The receiver
calls its listeners as the collector calls its own (``fn(batches, None)``, each item with a
``school``), so the alert engine cannot tell the difference. Lossy by design and that is fine: the
alert engine also makes a full pass over every school every ``interval_s`` (2 s), so a lost or
late datagram delays an alert by at most that, and never loses it.
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger(__name__)
MAX_DATAGRAM = 60000


@dataclass(frozen=True)
class StoredBatch:
    """What the receiving side knows of one message of a stored batch: its school."""
    school: str


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """The receiving socket (port 0: a free one); whoever binds it may hand it to a child process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock


class RelaySender:
    """A collector listener (``Collector.add_listener``) that sends each stored batch's schools."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)  # a full buffer drops the datagram; it never blocks ingest

    def __call__(self, prepared: list[Any], result: Any) -> None:
        schools = sorted({s for s in (getattr(p, "school", "") for p in prepared) if s})
        payload = json.dumps(schools, ensure_ascii=False).encode()
        if len(payload) > MAX_DATAGRAM:
            payload = b"[]"  # thousands of schools in one batch: wake the receiver, its full pass covers them
        try:
            self.sock.sendto(payload, self.addr)
        except OSError:
            pass  # nobody listening (the web process restarting): the receiver's periodic pass covers it

    def close(self) -> None:
        self.sock.close()


class RelayReceiver:
    """Reads the datagrams on ``sock`` in a thread and calls each listener with the batch's schools."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.settimeout(0.5)
        self.received = 0
        self._listeners: list[Callable[[list[StoredBatch], Any], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, fn: Callable[[list[StoredBatch], Any], None]) -> None:
        self._listeners.append(fn)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    log.exception("batch relay: the socket failed")
                return
            try:
                batch = [StoredBatch(str(s)) for s in json.loads(data)]
            except (ValueError, TypeError):
                log.warning("batch relay: ignored a malformed datagram (%d bytes)", len(data))
                continue
            self.received += 1
            for fn in self._listeners:
                try:
                    fn(batch, None)
                except Exception:
                    log.exception("batch listener failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bbt-batch-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.sock.close()
