"""Starting a real Mosquitto for tests, on a free port, with the project's config from deploy/."""
from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_CONF = ROOT / "deploy" / "mosquitto" / "test.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
                                              if os.path.exists(p)), None)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Mosquitto:
    """A Mosquitto process under the test's control (start, stop, kill, restart on the same port)."""

    def __init__(self, folder: Path, template: Path = TEST_CONF, port: int | None = None,
                 extra: str = "") -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.folder = folder
        self.port = port or free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "mosquitto.conf"
        # as root, Mosquitto drops to user 'mosquitto', which cannot write the test's folder (persistence, log)
        text = template.read_text().format(port=self.port, dir=folder) + "\n" + extra
        if hasattr(os, "geteuid") and os.geteuid() == 0 and not re.search(r"(?m)^user ", text):
            text += "\nuser root\n"
        self.conf.write_text(text)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> Mosquitto:
        err = self.folder / "stderr.log"
        with err.open("ab") as f:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=f)
        try:
            wait_port(self.port)
        except RuntimeError:
            raise RuntimeError(f"mosquitto did not start: {err.read_text()}") from None
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class TcpProxy:
    """Forwards 127.0.0.1:port to the broker; ``cut()`` drops every connection and refuses new ones.
    ``uplink_delay``: what a client sends after its first packet (the CONNECT) reaches the broker that
    much later (a loaded server: the CONNACK comes back at once, a SUBSCRIBE arrives late).
    ``connack_delay``: the broker's first packet (the CONNACK) reaches the client that much later (a
    network's round trip, which a client that uses its connection before it keeps it may need)."""

    def __init__(self, upstream_port: int, uplink_delay: float = 0.0, connack_delay: float = 0.0) -> None:
        self.upstream = upstream_port
        self.uplink_delay = uplink_delay
        self.connack_delay = connack_delay
        self.port = free_port()
        self.up = True
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._srv = socket.socket()
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(64)
        self._srv.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._srv.accept()
            except (TimeoutError, OSError):
                continue
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream), 2)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.settimeout(None)  # a quiet connection stays open (the 2 s above is for connecting only)
            with self._lock:
                self._socks |= {client, server}
            ways = ((client, server, 0.0, self.uplink_delay), (server, client, self.connack_delay, 0.0))
            for a, b, first, rest in ways:
                threading.Thread(target=self._pump, args=(a, b, first, rest), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, first_delay: float, delay: float) -> None:
        """Copy src to dst, the first chunk ``first_delay`` late, every later one ``delay`` late."""
        first = True
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                wait = first_delay if first else delay
                if wait:
                    time.sleep(wait)
                first = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                if s in self._socks:
                    self._socks.discard(s)
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()

    def cut(self) -> None:
        self.up = False
        with self._lock:
            socks = list(self._socks)
        self._close(*socks)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(2)
        self._srv.close()


def publish_packet(topic: bytes, body: bytes, qos: int = 1, mid: int = 0, retain: bool = False,
                   dup: bool = False) -> bytes:
    """An MQTT 3.1.1 PUBLISH packet as a broker sends it (for tests and benches of packet parsing)."""
    rest = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + body
    n, length = len(rest), bytearray()
    while True:  # remaining length: 7 bits a byte, low first
        n, byte = n >> 7, n & 0x7F
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([0x30 | dup << 3 | qos << 1 | retain]) + bytes(length) + rest


class EmbeddedRig:
    """A store with two PCs' accounts and the collector's, and bbt's embedded broker on a free port."""

    def __init__(self, tmp: Path) -> None:
        from collector import migrations
        from collector.db import connect
        from collector.intake import credentials
        from collector.intake.broker import EmbeddedBroker
        from collector.intake.broker_auth import Authority

        self.url = str(tmp / "bbt.db")
        self.db = connect(self.url)
        migrations.migrate(self.db)
        self.pw = {d: credentials.provision(self.db, "s1", d, "test") for d in ("pc-1", "pc-2")}
        self.collector_pw = credentials.collector_password(self.db)
        self.broker = EmbeddedBroker(Authority(self.url), "127.0.0.1", free_port(), pick_free=False)
        self.port = self.broker.start()

    def close(self) -> None:
        self.broker.stop()
        self.db.close()
