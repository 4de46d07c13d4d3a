"""The embedded MQTT broker (amqtt) for `bbt server` without --broker: one command, whole system.

Closed: no anonymous client, each PC only on its own topics (collector.intake.broker_auth).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
import threading
from typing import Any

from collector.intake.broker_auth import AUTHORITIES, Authority, ClosedBroker
from collector.intake.broker_tls import TlsFiles
from common.errors import BbtError

log = logging.getLogger(__name__)


class BrokerStartError(BbtError):
    pass


def port_free(host: str, port: int) -> bool:
    """True when a server could listen there now (SO_REUSEADDR, as servers use: a restart's
    TIME_WAIT connections do not count as taken, a listening socket does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """amqtt running on its own event loop in a daemon thread."""

    def __init__(self, authority: Authority, host: str = "127.0.0.1", port: int = 1883,
                 pick_free: bool = True, tls: TlsFiles | None = None) -> None:
        self.authority = authority
        self.tls = tls
        self.host = host
        self.requested = port
        self.port = port
        self.pick_free = pick_free
        self.note = ""
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self._watch_stop: asyncio.Event | None = None
        self._name = ""

    def _config(self) -> dict[str, Any]:
        """amqtt's configuration: one listener (TLS with --mqtt-tls), no anonymous clients, bbt's ACL."""
        name = self._name = f"broker-{id(self)}"
        AUTHORITIES[name] = self.authority
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self.host}:{self.port}"}
        if self.tls is not None:
            listener.update(ssl=True, certfile=self.tls.cert_file, keyfile=self.tls.key_file)
        return {"listeners": {"default": listener},
                "plugins": {"collector.intake.broker_auth.AuthPlugin": {"authority": name},
                            "collector.intake.broker_auth.TopicPlugin": {"authority": name}}}

    def start(self) -> int:
        if not port_free(self.host, self.port):
            if not self.pick_free:
                raise BrokerStartError(
                    f"port {self.host}:{self.port} is already in use (another MQTT broker such as Mosquitto?); "
                    f"use it with --broker mqtt://{self.host}:{self.port} or pick another --mqtt-port")
            self.port = free_port(self.host)
            self.note = (f"端口 {self.requested} 已被占用（可能已有 Mosquitto 在运行），内置 MQTT 代理改用 "
                         f"{self.host}:{self.port}。Port {self.requested} is in use (another broker?); the embedded "
                         f"broker listens on {self.host}:{self.port} instead. To use the running broker: "
                         f"--broker mqtt://{self.host}:{self.requested}")
        config = self._config()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def boot() -> None:
            # Built on its own loop's thread: amqtt makes its shutdown future in __init__, on the current loop;
            # made elsewhere, that future never wakes this loop and every stop waited out amqtt's 5 s timeout.
            self._broker = ClosedBroker(config, loop=self._loop)
            await self._broker.start()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(boot())
            except BaseException as e:  # reported to the starter
                failure.append(e)
                ready.set()
                return
            self._watch_stop = asyncio.Event()
            self._loop.create_task(self.authority.watch(self._broker, self._watch_stop))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="bbt-broker", daemon=True)
        self._thread.start()
        ready.wait(15)
        if failure:
            self._thread.join(5)
            self._close_loop()
            e = failure[0]
            if isinstance(e, OSError) and e.errno == errno.EADDRINUSE:
                raise BrokerStartError(f"port {self.host}:{self.port} is already in use")
            raise BrokerStartError(f"the embedded broker did not start: {e}")
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self.port

    def stop(self) -> None:
        if self._broker is None or not self._loop.is_running():
            self._close_loop()
            return
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)  # its shutdown logs cancelled tasks as errors
        if self._watch_stop is not None:
            self._loop.call_soon_threadsafe(self._watch_stop.set)
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(10)
        except Exception as e:  # shutting down anyway
            log.debug("broker shutdown: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(5)
        AUTHORITIES.pop(self._name, None)
        self._close_loop()

    def _close_loop(self) -> None:
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
