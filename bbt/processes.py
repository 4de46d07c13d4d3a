"""`bbt server` as supervised processes: ingest in one, the web pages and alerts in another.

The supervisor (this process) migrates the store, runs the embedded broker (unless --broker), binds
the dashboard's HTTP socket and the batch relay's socket, then starts two children of its own
program (``python -m bbt.processes ingest|web``):

* ingest: the collector (MQTT in, durable batches, acknowledge after commit) and its maintenance;
* web: the dashboard (waitress on the inherited socket), the alert engine and the scheduled jobs.

Each stored batch is told to the web process with a loopback datagram (collector.intake.batch_relay); the
alert engine's periodic full pass (2 s) covers a lost one. A child that dies is restarted after
1 s, doubling to 30 s while it keeps dying (back to 1 s once it has run a minute); every exit is
logged with its code. The sockets and the broker stay with the supervisor, so a restart neither
races for the port nor loses the collector's MQTT session (QoS 1 messages not yet acknowledged are
delivered again). SIGTERM/SIGINT stop the children (SIGTERM, then SIGKILL after 20 s) and then the
supervisor. A child whose supervisor vanished sees its stdin close and stops.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable

from bbt.server import Attached, Server, ServerOptions, ServerStartError, http_port_taken
from collector.intake import batch_relay
from collector.intake.broker_tls import TlsFiles
from common.mqttconf import BrokerConfig

log = logging.getLogger(__name__)

ROLES = ("ingest", "web")
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 60.0  # a child that ran this long starts over at BACKOFF_FIRST_S when it dies
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
READY = "bbt-child-ready"


def bind_http(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket, bound here once for every web process to come."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise http_port_taken(host, port) from None
    sock.set_inheritable(True)
    return sock


@dataclasses.dataclass
class Child:
    role: str
    name: str  # the role, numbered when several ingest processes share the stream ("ingest-2")
    index: int = 0
    proc: subprocess.Popen[str] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_FIRST_S
    restarts: int = 0
    ready: threading.Event = dataclasses.field(default_factory=threading.Event)


class Supervisor:
    """`bbt server` by default. The same attributes as Server for the start-up line (broker_cfg,
    mqtt_bind, tls, url)."""

    def __init__(self, opts: ServerOptions, notice: Callable[[str], None] = print) -> None:
        self.opts = opts
        self.notice = notice
        self.core = Server(opts, notice, role="broker")
        n = opts.ingest_processes
        if n > 1 and opts.broker is None:
            raise ServerStartError("多个采集进程需要外部 MQTT 代理（--broker）；--ingest-processes above 1 needs an "
                                   "external broker with shared subscriptions (--broker), the embedded one has none")
        ingest = [Child("ingest", "ingest")] if n <= 1 else [Child("ingest", f"ingest-{i}", i) for i in range(1, n + 1)]
        self.children = {c.name: c for c in [*ingest, Child("web", "web")]}
        self.http_sock: socket.socket | None = None
        self.relay_sock: socket.socket | None = None
        self.http_port = opts.http_port
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    broker_cfg = property(lambda self: self.core.broker_cfg)
    mqtt_bind = property(lambda self: self.core.mqtt_bind)
    tls = property(lambda self: self.core.tls)

    @property
    def url(self) -> str:
        return f"http://{self.opts.http_host}:{self.http_port}/"

    def start(self) -> None:
        """Start everything, or nothing: a child that dies before it is ready stops it all and raises."""
        try:
            self.http_sock = bind_http(self.opts.http_host, self.opts.http_port)
            self.http_port = self.http_sock.getsockname()[1]
            self.relay_sock = batch_relay.bind()
            self.relay_sock.set_inheritable(True)
            self.core.start()
            # ingest first: once the dashboard answers, the collector has subscribed (with a shared
            # subscription, what devices publish before that reaches nobody)
            for role in ROLES:
                group = [c for c in self.children.values() if c.role == role]
                for child in group:
                    self._spawn(child)
                for child in group:
                    self._await_ready(child)
        except BaseException:
            self.stop()
            raise
        for child in self.children.values():
            t = threading.Thread(target=self._watch, args=(child,), name=f"bbt-watch-{child.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _spec(self, child: Child) -> dict[str, Any]:
        assert self.core.broker_cfg is not None and self.http_sock and self.relay_sock
        opts = dataclasses.asdict(self.opts)
        opts["http_port"] = self.http_port
        if child.index:  # one of several on the stream: an MQTT shared subscription, a client id each
            opts.update(client_id=f"{self.opts.client_id}-{child.index}",
                        share_group=self.opts.share_group or f"{self.opts.client_id}-ingest")
        spec: dict[str, Any] = {"opts": opts, "broker": dataclasses.asdict(self.core.broker_cfg),
                                "tls": dataclasses.asdict(self.core.tls) if self.core.tls else None}
        if child.role == "web":
            spec.update(http_fd=self.http_sock.fileno(), relay_fd=self.relay_sock.fileno())
        else:
            spec["relay_port"] = self.relay_sock.getsockname()[1]
        return spec

    def _spawn(self, child: Child) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            spec = self._spec(child)
            fds = [spec[k] for k in ("http_fd", "relay_fd") if k in spec]
            root = str(Path(__file__).resolve().parent.parent)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))
            child.ready.clear()
            child.proc = subprocess.Popen(
                [sys.executable, "-m", "bbt.processes", child.role], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                pass_fds=fds, env=env, text=True, process_group=0)  # its own group: Ctrl-C reaches the supervisor
            child.started = time.monotonic()
            assert child.proc.stdin is not None and child.proc.stdout is not None
            child.proc.stdin.write(json.dumps(spec) + "\n")  # kept open: EOF tells the child we are gone
            child.proc.stdin.flush()
            threading.Thread(target=self._read, args=(child, child.proc.stdout), daemon=True,
                             name=f"bbt-out-{child.name}").start()
        log.info("started the %s process (pid %d)", child.name, child.proc.pid)

    @staticmethod
    def _read(child: Child, out: IO[str]) -> None:
        """The child's standard output: its ready line, the rest passed on."""
        for line in out:
            if line.strip() == READY:
                child.ready.set()
            else:
                sys.stdout.write(line)
                sys.stdout.flush()

    def _await_ready(self, child: Child) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert child.proc is not None
        while not child.ready.wait(0.1):
            code = child.proc.poll()
            if code is not None:
                raise ServerStartError(f"{child.name} 进程未能启动（退出代码 {code}）；the {child.name} process "
                                       f"did not start (exit code {code}): see its messages above")
            if time.monotonic() > deadline:
                self.notice(f"警告：{child.name} 进程 {READY_TIMEOUT_S:.0f} 秒内未就绪。Warning: the {child.name} "
                            f"process is not ready after {READY_TIMEOUT_S:.0f} s; carrying on.")
                return

    def _watch(self, child: Child) -> None:
        """Wait for the child to exit; restart it with backoff unless we are stopping."""
        while not self._stopping.is_set():
            assert child.proc is not None
            code = child.proc.wait()
            if self._stopping.is_set():
                return
            ran = time.monotonic() - child.started
            if ran >= STABLE_S:
                child.backoff = BACKOFF_FIRST_S
            log.error("%s 进程退出（退出代码 %s，运行 %.0f 秒），%.0f 秒后重启。The %s process (pid %d) exited with "
                      "code %s after %.0f s; restarting it in %.0f s", child.name, code, ran, child.backoff,
                      child.name, child.proc.pid, code, ran, child.backoff)
            if self._stopping.wait(child.backoff):
                return
            child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
            child.restarts += 1
            self._spawn(child)

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        procs = [c.proc for c in self.children.values() if c.proc is not None and c.proc.poll() is None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("the process %d did not stop in %.0f s; killing it", p.pid, STOP_TIMEOUT_S)
                p.kill()
                p.wait()
        for c in self.children.values():
            if c.proc is not None and c.proc.stdin is not None:
                c.proc.stdin.close()
        self.core.stop()
        for s in (self.http_sock, self.relay_sock):
            if s is not None:
                s.close()

    def serve_forever(self) -> None:
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        try:
            done.wait()
        finally:
            self.stop()


# -- the children ------------------------------------------------------------------------------------

def child_server(role: str, spec: dict[str, Any]) -> Server:
    """The Server a child runs, from what the supervisor handed it."""
    o = dict(spec["opts"])
    o["broker"] = BrokerConfig(**o["broker"]) if o["broker"] else None
    tls = spec["tls"] and TlsFiles(**{**spec["tls"], "hosts": tuple(spec["tls"]["hosts"])})
    attached = Attached(broker=BrokerConfig(**spec["broker"]), tls=tls or None,
                        relay_port=int(spec.get("relay_port", 0)))
    if "http_fd" in spec:
        attached.http_socket = socket.socket(fileno=spec["http_fd"])
        attached.relay_socket = socket.socket(fileno=spec["relay_fd"])
    return Server(ServerOptions(**o), notice=log.warning, role=role, attached=attached)


def child_main(role: str) -> None:
    """A child's life: read the spec on stdin, start, say ready, run until SIGTERM or stdin's end."""
    from bbt.cli import setup_logging

    setup_logging(False)
    for h in logging.getLogger().handlers:
        h.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s"))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    srv = child_server(role, json.loads(sys.stdin.readline()))
    srv.start()
    print(READY, flush=True)

    def orphaned() -> None:
        sys.stdin.read()  # returns when the supervisor's end closes: it stopped or died
        done.set()
    threading.Thread(target=orphaned, name="bbt-stdin", daemon=True).start()
    try:
        done.wait()
    finally:
        srv.stop()


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ROLES:
        sys.exit(f"usage: python -m bbt.processes {{{'|'.join(ROLES)}}} (started by `bbt server`)")
    child_main(sys.argv[1])
