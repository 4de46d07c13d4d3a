"""`bbt server`: embedded (or external) broker + collector + dashboard, the composition root.

``Server`` runs what its ``role`` says: ``all`` (one process: `bbt server --one-process`, the demo,
tests), or one part of the supervised processes of `bbt server` (bbt.processes): ``broker`` (the
supervisor: the store's migration and the embedded broker), ``ingest`` (collector + maintenance)
and ``web`` (dashboard + alerts + scheduled jobs). A child is handed what the supervisor owns
(``Attached``: the broker to use, the HTTP socket, the batch relay).
"""
from __future__ import annotations

import logging
import signal
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from alerts import engine as alerts_engine
from collector import migrations
from collector.db import connect
from collector.devices import school_keys
from collector.intake import batch_relay, broker_tls, credentials
from collector.intake.broker import EmbeddedBroker, port_free
from collector.intake.broker_auth import Authority
from collector.intake.service import Collector
from collector.operations import maintenance, trust_jobs
from collector.rates import usage_jobs
from common.errors import BbtError
from common.mqttconf import BrokerConfig
from dashboard import create_app

log = logging.getLogger(__name__)


class ServerStartError(BbtError):
    pass


def http_port_taken(host: str, port: int) -> ServerStartError:
    return ServerStartError(f"仪表盘端口 {host}:{port} 已被占用；dashboard port {host}:{port} is already in use "
                            f"(another bbt server or web server?): choose another with --http HOST:PORT")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def default_mqtt_host(http_host: str) -> str:
    """Where the embedded broker listens when --mqtt-host is not given: where the dashboard is reachable
    from (loopback stays loopback; anything else means the PCs of the school: all interfaces)."""
    return "127.0.0.1" if http_host in LOOPBACK else "0.0.0.0"


@dataclass
class ServerOptions:
    db_url: str | None = None
    broker: BrokerConfig | None = None  # None: run the embedded broker
    mqtt_host: str | None = None  # None: all interfaces unless the dashboard is on loopback only
    mqtt_port: int = 1883
    mqtt_tls: bool = False  # the embedded broker speaks TLS with a generated school CA (collector.intake.broker_tls)
    mqtt_tls_hosts: list[str] = field(default_factory=list)  # extra names/IPs for its certificate
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    secret_key: str | None = None
    client_id: str = "bbt-collector"
    share_group: str | None = None  # district: one of several collectors on $share/GROUP/...
    ingest_processes: int = 1  # supervised (bbt.processes): ingest processes sharing the stream (--broker)
    extra_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class Attached:
    """What a child of the supervisor (bbt.processes) uses instead of starting it itself."""
    broker: BrokerConfig  # the supervisor's embedded broker or the external one
    tls: broker_tls.TlsFiles | None = None  # the embedded broker's TLS files (its CA goes to enrolling PCs)
    http_socket: socket.socket | None = None  # web: the listening socket the supervisor bound
    relay_socket: socket.socket | None = None  # web: where stored batches are told (collector.intake.batch_relay)
    relay_port: int = 0  # ingest: where to tell them


def _start_alerts(server: Server) -> Callable[[], None]:
    """The alert engine on the store, woken by each batch the collector stores (in this process, or
    in the ingest process through the batch relay)."""
    subscribe: Callable[[Callable[..., None]], None]
    if server.collector is not None:
        db, subscribe, own = server.collector.db, server.collector.add_listener, None
    else:
        assert server.relay is not None
        db = own = connect(server.opts.db_url)
        subscribe = server.relay.add_listener
    server.alerts, stop = alerts_engine.start_for_store(
        db, server.url.rstrip("/"), subscribe, **server.opts.extra_config.get("ALERTS", {}))
    if own is None:
        return stop

    def stop_and_close() -> None:
        stop()
        own.close()
    return stop_and_close


# What a Server runs once started (each returns an optional stop function), so that `bbt server`,
# the demo and tests all get them: the ingest side next to the collector, the rest next to the web pages.
INGEST_JOBS: list[Callable[[Server], Callable[[], None] | None]] = [maintenance.start_for_server]
WEB_JOBS: list[Callable[[Server], Callable[[], None] | None]] = [trust_jobs.start, usage_jobs.install, _start_alerts]
JOBS = {"all": INGEST_JOBS + WEB_JOBS, "ingest": INGEST_JOBS, "web": WEB_JOBS, "broker": []}


def prepare_store(db_url: str | None, embedded: bool) -> str:
    """Migrate the store and give every school its key (signed by default from the first start);
    returns the collector's password on the embedded broker ("" with an external one)."""
    db = connect(db_url)
    try:
        migrations.migrate(db)
        school_keys.ensure_all(db)
        return credentials.collector_password(db) if embedded else ""
    finally:
        db.close()


class Server:
    def __init__(self, opts: ServerOptions, notice: Callable[[str], None] = print, role: str = "all",
                 attached: Attached | None = None) -> None:
        if role not in JOBS:
            raise ValueError(f"unknown server role {role!r}")
        self.opts = opts
        self.notice = notice
        self.role = role
        self.attached = attached
        self.relay: batch_relay.RelayReceiver | None = None
        self._relay_sender: batch_relay.RelaySender | None = None
        self.embedded: EmbeddedBroker | None = None
        self.collector: Collector | None = None
        self.http: Any = None
        self._http_thread: threading.Thread | None = None
        self.broker_cfg: BrokerConfig | None = None
        self.mqtt_bind = ""  # where the embedded broker listens ("" with an external broker)
        self.tls: broker_tls.TlsFiles | None = None
        self.http_port = opts.http_port
        self.alerts: alerts_engine.AlertEngine | None = None
        self._stoppers: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start everything, or nothing: a failure stops what had started and raises."""
        o = self.opts
        serves_http = self.role in ("all", "web") and (self.attached is None or self.attached.http_socket is None)
        if serves_http and o.http_port and not port_free(o.http_host, o.http_port):
            raise http_port_taken(o.http_host, o.http_port)
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise

    def _start_all(self) -> None:
        o = self.opts
        if self.attached is None:
            collector_pw = prepare_store(o.db_url, o.broker is None)
            self.broker_cfg = self._start_embedded(collector_pw) if o.broker is None else o.broker
        else:
            self.broker_cfg, self.tls = self.attached.broker, self.attached.tls
        if self.role in ("all", "ingest"):
            self._start_collector()
        if self.role in ("all", "web"):
            if self.attached is not None and self.attached.relay_socket is not None:
                self.relay = batch_relay.RelayReceiver(self.attached.relay_socket)
                self.relay.start()
            self._start_http()
        for job in JOBS[self.role]:
            stop = job(self)
            if stop is not None:
                self._stoppers.append(stop)

    def _start_collector(self) -> None:
        o = self.opts
        assert self.broker_cfg is not None
        self.collector = Collector(o.db_url, self.broker_cfg, client_id=o.client_id, share_group=o.share_group)
        if self.attached is not None and self.attached.relay_port:
            self._relay_sender = batch_relay.RelaySender(self.attached.relay_port)
            self.collector.add_listener(self._relay_sender)
        self.collector.start()
        if not self.collector.connected.wait(10):
            self.notice(f"警告：连接不上 MQTT 代理 {self.broker_cfg.url}，将继续重试。"
                        f"Warning: cannot reach the broker at {self.broker_cfg.url}; retrying in the background.")

    def _start_embedded(self, collector_pw: str) -> BrokerConfig:
        o = self.opts
        self.mqtt_bind = o.mqtt_host or default_mqtt_host(o.http_host)
        if o.mqtt_tls:
            hosts = broker_tls.local_names([*o.mqtt_tls_hosts, *([self.mqtt_bind] if self.mqtt_bind not in
                                                                   ("0.0.0.0", "::") else [])])
            self.tls = broker_tls.ensure(broker_tls.data_dir(o.db_url) / broker_tls.FOLDER, hosts)
        self.embedded = EmbeddedBroker(Authority(o.db_url), self.mqtt_bind, o.mqtt_port, tls=self.tls)
        port = self.embedded.start()
        if self.embedded.note:
            self.notice(self.embedded.note)
        local = "127.0.0.1" if self.mqtt_bind in ("0.0.0.0", "::", "") else self.mqtt_bind
        return BrokerConfig(host=local, port=port, username=credentials.COLLECTOR_USER, password=collector_pw,
                            tls=self.tls is not None, ca_file=self.tls.ca_file if self.tls else None)

    def _start_http(self) -> None:
        from waitress.server import create_server

        assert self.broker_cfg is not None
        config = {"BBT_DB": self.opts.db_url, "BROKER": self.broker_cfg, "MQTT_PORT": self.broker_cfg.port,
                  "BROKER_CA_PEM": self.tls.ca_pem if self.tls else None,
                  "EXTERNAL_BROKER": self.opts.broker is not None}
        if self.opts.secret_key:
            config["SECRET_KEY"] = self.opts.secret_key
        config.update(self.opts.extra_config)
        app = create_app(config)
        where: dict[str, Any] = {"host": self.opts.http_host, "port": self.opts.http_port}
        if self.attached is not None and self.attached.http_socket is not None:
            where = {"sockets": [self.attached.http_socket]}
        try:
            self.http = create_server(app, threads=8, **where)
        except OSError:
            raise http_port_taken(self.opts.http_host, self.opts.http_port) from None
        self.http_port = self.http.effective_port
        self._http_thread = threading.Thread(target=self.http.run, name="bbt-http", daemon=True)
        self._http_thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.opts.http_host}:{self.http_port}/"

    def stop(self) -> None:
        for stop in reversed(self._stoppers):
            try:
                stop()
            except Exception:
                log.exception("stopping a component failed")
        if self.http is not None:
            self.http.close()
        if self.relay is not None:
            self.relay.stop()
        if self.collector is not None:
            self.collector.stop()
        if self._relay_sender is not None:
            self._relay_sender.close()
        if self.embedded is not None:
            self.embedded.stop()

    def serve_forever(self) -> None:
        done = threading.Event()

        def handler(signum: int, frame: Any) -> None:
            done.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)
        try:
            done.wait()
        finally:
            self.stop()
