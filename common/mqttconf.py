"""Broker connection settings shared by agent, collector and tools (Python 3.8+)."""
from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

from common.errors import BbtError


class BrokerURLError(BbtError, ValueError):
    pass


@dataclass
class BrokerConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    username: Optional[str] = None
    password: Optional[str] = None
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    keepalive: int = 30

    @property
    def url(self) -> str:
        """The URL without credentials (safe to log)."""
        return "%s://%s:%d" % ("mqtts" if self.tls else "mqtt", self.host, self.port)


def parse_broker_url(url: str, **overrides: Any) -> BrokerConfig:
    """mqtt://[user:pass@]host[:port] or mqtts://... (TLS, default port 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise BrokerURLError("broker URL %r must start with mqtt:// or mqtts://" % _safe(url))
    if not parts.hostname:
        raise BrokerURLError("broker URL %r has no host" % _safe(url))
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise BrokerURLError("broker URL %r has a bad port" % _safe(url)) from None
    cfg = BrokerConfig(host=parts.hostname, port=port, tls=tls,
                       username=unquote(parts.username) if parts.username else None,
                       password=unquote(parts.password) if parts.password else None)
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    if cfg.ca_file or cfg.cert_file:
        cfg.tls = True
    return cfg


def _safe(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@")
    return url


def make_client(cfg: BrokerConfig, client_id: str, clean_session: bool = True, manual_ack: bool = False,
                client_class: Any = None) -> Any:
    """A paho-mqtt 2 client (MQTT 3.1.1) with TLS and credentials applied; not yet connected.
    ``client_class``: a subclass of paho's Client to use instead (the collector's buffered reader)."""
    import paho.mqtt.client as mqtt

    client = (client_class or mqtt.Client)(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                           clean_session=clean_session, protocol=mqtt.MQTTv311, manual_ack=manual_ack)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set_context(tls_context(cfg))
    client.reconnect_delay_set(1, 60)
    return client


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho-mqtt leaves the socket open when the TLS handshake fails; an agent retrying a refused
    broker every minute for months would leak a descriptor each time. Close it on failure."""

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().do_handshake(*args, **kwargs)
        except BaseException:
            self.close()
            raise


def tls_context(cfg: BrokerConfig) -> ssl.SSLContext:
    """Verify the broker against the pinned CA only (not the system store) and check its host name.

    With ``ca_file`` set, only that CA is trusted: a broker with a certificate from any other CA
    (a fake broker behind a hosts-file entry) fails the handshake and nothing is published to it.
    """
    try:
        # cafile given: create_default_context loads only it, never the system's CAs
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.ca_file)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    except FileNotFoundError as e:
        raise BrokerURLError("TLS file not found: %s" % e.filename) from None
    except (ssl.SSLError, OSError) as e:
        raise BrokerURLError("cannot load the TLS files (ca %s, cert %s): %s"
                             % (cfg.ca_file, cfg.cert_file, e)) from None
    ctx.sslsocket_class = _ClosingSSLSocket
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def release_sockets(client: Any) -> None:
    """Close paho's internal wake-up socket pair after ``loop_stop()``.

    paho closes it only in ``Client.__del__``; a client caught in a reference cycle (callbacks bound
    to their owner) is then finalized after its sockets, which leaks them with a ResourceWarning."""
    reset = getattr(client, "_reset_sockets", None)
    if reset is not None:
        reset()
