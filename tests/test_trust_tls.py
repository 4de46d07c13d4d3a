"""TLS with a pinned school CA: the agent works with the school's broker and refuses a fake one."""
from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509

from agent.config import load_config
from agent.probes.idle import IdleSource
from agent.runner import Agent
from collector.intake.certs import CertPlan, make_certs
from collector.intake.service import Collector
from common.mqttconf import BrokerConfig, tls_context
from tests.brokers import Mosquitto, free_port, mosquitto_binary
from tests.helpers import run_bbt, wait_for

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")


class FixedIdle(IdleSource):
    def idle_seconds(self) -> float:
        return 0.0


def tls_broker(folder: Path, conf: Path, port: int) -> Mosquitto:
    # tests run as any user; Debian's Mosquitto would drop to 'mosquitto' and could not read the test's tmp dir
    extra = f"persistence false\nlog_dest file {folder}/mosquitto.log\nlog_type all\n"
    if os.geteuid() == 0:
        extra = "user root\n" + extra
    return Mosquitto(folder, template=conf, port=port, extra=extra).start()


@pytest.fixture
def school(tmp_path: Path) -> Iterator[tuple[Path, Mosquitto]]:
    port = free_port()
    out = tmp_path / "certs"
    r = run_bbt("deploy", "certs", "--school", "s1", "--out", str(out), "--device", "pc-1", "--device", "pc-2",
                "--host", "localhost", "--host", "127.0.0.1", "--port", str(port))
    assert r.returncode == 0, r.stderr
    assert (out / "ca.key").stat().st_mode & 0o077 == 0, "the CA key must be private"
    m = tls_broker(tmp_path / "good", out / "mosquitto-tls.conf", port)
    yield out, m
    m.stop()


@pytest.fixture
def fake_broker(tmp_path: Path) -> Iterator[tuple[Path, Mosquitto]]:
    """A broker anyone may use, with a certificate from another CA but the same host names."""
    port = free_port()
    out = tmp_path / "evil"
    make_certs(CertPlan(school="s1", out=out, hosts=["localhost", "127.0.0.1"], port=port))
    conf = tmp_path / "evil.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {out}/ca.crt\n"
                    f"certfile {out}/server.crt\nkeyfile {out}/server.key\n")
    m = tls_broker(tmp_path / "evil-broker", conf, port)
    yield out, m
    m.stop()


def start_agent(tmp_path: Path, ini: Path, broker: str) -> Agent:
    cfg = load_config(str(ini), {"broker": broker, "data_dir": str(tmp_path / "agent"), "heartbeat_s": 1.0},
                      environ={})
    a = Agent(cfg, idle_source=FixedIdle())
    a.start()
    return a


def test_agent_refuses_a_broker_with_a_certificate_from_another_ca(
        tmp_path: Path, school: tuple[Path, Mosquitto], fake_broker: tuple[Path, Mosquitto]) -> None:
    good, _ = school
    evil, evil_broker = fake_broker
    seen: list[str] = []
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spy")
    spy.tls_set(ca_certs=str(evil / "ca.crt"))
    spy.on_message = lambda c, u, m: seen.append(m.topic)
    spy.connect("localhost", evil_broker.port)
    spy.subscribe("#", 1)
    spy.loop_start()
    # the hosts-file attack: the agent's configured name resolves to the fake broker
    agent = start_agent(tmp_path, good / "devices" / "pc-1" / "agent.ini", f"mqtts://localhost:{evil_broker.port}")
    try:
        wait_for(lambda: "certificate verify failed" in (evil_broker.folder / "mosquitto.log").read_text()
                 or "alert" in (evil_broker.folder / "mosquitto.log").read_text(), 10, what="handshake refused")
        time.sleep(2.5)  # several heartbeats and reconnect attempts
        assert not agent.connected
        assert seen == [], f"the agent published to the fake broker: {seen}"
        assert "Received PUBLISH" not in (evil_broker.folder / "mosquitto.log").read_text()
        assert len(agent.outbox) >= 2, "events stay in the outbox for the real broker"
    finally:
        agent.stop(flush_timeout=0)
        spy.disconnect()
        spy.loop_stop()


def test_agent_works_end_to_end_with_the_school_broker(tmp_path: Path, school: tuple[Path, Mosquitto]) -> None:
    out, broker = school
    col = Collector(str(tmp_path / "bbt.db"), BrokerConfig(
        host="localhost", port=broker.port, tls=True, ca_file=str(out / "ca.crt"),
        cert_file=str(out / "bbt-collector.crt"), key_file=str(out / "bbt-collector.key")))
    col.start()
    agent = start_agent(tmp_path, out / "devices" / "pc-1" / "agent.ini", f"mqtts://localhost:{broker.port}")
    try:
        assert col.connected.wait(10)
        wait_for(lambda: col.db.query("SELECT COUNT(*) AS n FROM events WHERE device = 'pc-1' AND type = 'heartbeat'"
                                      )[0]["n"] >= 1, 15, what="pc-1's events stored over TLS")
        log = (broker.folder / "mosquitto.log").read_text()
        assert "as pc-1 (" in log and "u'pc-1'" in log, "the device's certificate CN is its MQTT username"
    finally:
        agent.stop()
        col.stop()


CONNECT = bytes([0x10, 14, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 2]) + b"zz"  # MQTT 3.1.1, client id "zz"


def connack(ctx: ssl.SSLContext, port: int) -> bytes:
    """What the broker answers a CONNECT over TLS with this context; b"" if it refused the client."""
    with socket.create_connection(("127.0.0.1", port), 5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(CONNECT)
                return s.recv(4)
        except (ssl.SSLError, ConnectionError):
            return b""


def test_broker_refuses_clients_without_a_school_certificate(school: tuple[Path, Mosquitto],
                                                             fake_broker: tuple[Path, Mosquitto]) -> None:
    out, broker = school
    evil, _ = fake_broker
    cfg = BrokerConfig(host="localhost", port=broker.port, tls=True, ca_file=str(out / "ca.crt"),
                       cert_file=str(out / "devices" / "pc-2" / "client.crt"),
                       key_file=str(out / "devices" / "pc-2" / "client.key"))
    assert connack(tls_context(cfg), broker.port)[:1] == bytes([0x20]), "a school device is accepted"
    cfg.cert_file, cfg.key_file = None, None
    assert connack(tls_context(cfg), broker.port) == b"", "no client certificate: refused"
    cfg.cert_file, cfg.key_file = str(evil / "bbt-collector.crt"), str(evil / "bbt-collector.key")
    assert connack(tls_context(cfg), broker.port) == b"", "a certificate from another CA: refused"


def test_tls_settings_never_fall_back_to_plain_mqtt(tmp_path: Path) -> None:
    from common.mqttconf import BrokerURLError, parse_broker_url

    out = tmp_path / "c"
    make_certs(CertPlan(school="s1", out=out, devices=["pc-1"]))
    cfg = load_config(str(out / "devices" / "pc-1" / "agent.ini"), {"broker": "mqtt://localhost:1883"}, environ={})
    assert cfg.ca_file == str(out / "devices" / "pc-1" / "ca.crt"), "paths relative to the agent.ini"
    b = parse_broker_url(cfg.broker, ca_file=cfg.ca_file, cert_file=cfg.cert_file, key_file=cfg.key_file)
    assert b.tls, "a CA file forces TLS even on an mqtt:// URL"
    ctx = tls_context(b)
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(ctx.get_ca_certs()) == 1, "only the pinned school CA, not the system store"
    with pytest.raises(BrokerURLError, match="not found"):
        tls_context(BrokerConfig(host="x", tls=True, ca_file=str(tmp_path / "missing.crt")))


def test_devices_csv_and_bad_input(tmp_path: Path) -> None:
    from collector.intake.certs import CertError, read_devices_csv

    good = tmp_path / "devices.csv"
    good.write_text("\ufeffdevice,class\npc-101,一(1)班\npc-102,一(2)班\npc-101,一(1)班\n", encoding="utf-8")
    assert read_devices_csv(str(good)) == ["pc-101", "pc-102"]
    bad = tmp_path / "bad.csv"
    bad.write_text("device,class\npc-101,一(1)班\n教室 3,一(3)班\n", encoding="utf-8")
    with pytest.raises(CertError, match="line 3"):
        read_devices_csv(str(bad))
    r = run_bbt("deploy", "certs", "--school", "s1", "--out", str(tmp_path / "o"), "--devices", str(bad))
    assert r.returncode == 1 and "line 3" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_bbt("deploy", "certs", "--school", "s1", "--out", str(tmp_path / "o"), "--devices", str(good))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "o" / "devices").iterdir()) == ["pc-101", "pc-102"]
    again = run_bbt("deploy", "certs", "--school", "s1", "--out", str(tmp_path / "o"), "--device", "pc-103")
    assert again.returncode == 0 and "kept" in again.stdout
    ca = x509.load_pem_x509_certificate((tmp_path / "o" / "ca.crt").read_bytes())
    leaf = x509.load_pem_x509_certificate((tmp_path / "o" / "devices" / "pc-103" / "client.crt").read_bytes())
    assert leaf.issuer == ca.subject, "the CA is kept: devices deployed earlier stay valid"
