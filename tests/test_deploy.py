"""deploy/: the production set-ups' files, actually loaded — systemd units and env files parsed
and checked against the CLI, the district's Mosquitto edge+central bridge run with collectors on a
shared subscription, PostgreSQL settings known to the server, nginx -t and a request through it."""
from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest

import protocol
from bbt.cli import main
from collector.intake.service import Collector
from common.mqttconf import parse_broker_url
from tests.brokers import free_port, mosquitto_binary, wait_port
from tests.helpers import ROOT, close, publisher, wait_for

DEPLOY = Path(ROOT) / "deploy"
UNITS = sorted(DEPLOY.glob("*/*.service"))
ENV_FILES = sorted(DEPLOY.glob("*/bbt.env"))
DOCUMENTED = set(re.findall(r"`(BBT_[A-Z_]+)`", (Path(ROOT) / "docs" / "settings.md").read_text(encoding="utf-8")))


def cli_envvars() -> set[str]:
    out: set[str] = set()

    def walk(cmd: click.Command) -> None:
        for p in cmd.params:
            if isinstance(p, click.Option) and p.envvar:
                out.update([p.envvar] if isinstance(p.envvar, str) else p.envvar)
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                walk(sub)
    walk(main)
    return out


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path}:{n}: not KEY=value: {line!r}"
        env[key] = value
    return env


def unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path, encoding="utf-8")
    return cp


def test_env_files_only_known_settings() -> None:
    known = cli_envvars() | DOCUMENTED
    for path in ENV_FILES:
        env = read_env(path)
        assert "BBT_DB" in env, path
        unknown = sorted(set(env) - known)
        assert not unknown, f"{path}: settings bbt does not read: {unknown}"
    district = read_env(DEPLOY / "district" / "bbt.env")
    assert district["BBT_DB"].startswith("postgresql://") and district["BBT_SHARE_GROUP"]


@pytest.mark.parametrize("path", UNITS, ids=[f"{p.parent.name}/{p.name}" for p in UNITS])
def test_systemd_unit_runs_a_valid_bbt_command(path: Path) -> None:
    cp = unit(path)
    assert {"Unit", "Service", "Install"} <= set(cp.sections())
    svc = cp["Service"]
    assert svc["Restart"] == "always" and svc["User"] == "bbt"
    env_file = Path(svc["EnvironmentFile"])
    assert env_file.name == "bbt.env" and (path.parent / "bbt.env").exists()
    env = read_env(path.parent / "bbt.env")
    args = shlex.split(svc["ExecStart"].replace("%i", "1").replace("%H", "host1"))
    assert args[0] == "/opt/bbt/.venv/bin/bbt"
    name, rest = args[1], args[2:]
    sub = main.commands.get(name)
    assert sub is not None, f"{path}: no command {name!r}"
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the EnvironmentFile supplies --db, the group, credentials
    try:
        sub_ctx = sub.make_context(name, rest)  # raises on an unknown option or a bad value
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert sub_ctx.params.get("db_url") == env["BBT_DB"]
    if path.parent.name == "district":
        assert sub_ctx.params.get("share_group") == "bbt" and "%H" in svc["ExecStart"]


def render_mosquitto(src: Path, folder: Path, port: int, central_port: int | None = None) -> Path:
    """The production file with a test port and folder; authentication left to the ACL tests."""
    text = src.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1", text)
    text = re.sub(r"(?m)^(password_file|acl_file) .*$", "", text)
    text = text.replace("allow_anonymous false", "allow_anonymous true")
    text = text.replace("persistence_location /var/lib/mosquitto/", f"persistence_location {folder}/")
    text = text.replace("log_dest syslog", f"log_dest file {folder}/mosquitto.log")
    text = re.sub(r"(?m)^remote_(username|password) .*$", "", text)
    if central_port is not None:
        text = text.replace("address mqtt-central.district.lan:1883", f"address 127.0.0.1:{central_port}")
    if os.geteuid() == 0:
        text += "\nuser root\n"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / src.name
    out.write_text(text, encoding="utf-8")
    return out


def test_district_brokers_bridge_into_shared_collectors(db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    if mosquitto_binary() is None:
        pytest.skip("mosquitto not installed")
    binary = mosquitto_binary()
    assert binary is not None
    cport, eport = free_port(), free_port()
    procs = []
    cols: list[Collector] = []
    try:
        for name, port, upstream in (("central", cport, None), ("edge", eport, cport)):
            conf = render_mosquitto(DEPLOY / "district" / f"mosquitto-{name}.conf", tmp_path / name, port, upstream)
            with (tmp_path / f"{name}.err").open("wb") as err:
                procs.append(subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err))
            wait_port(port)
        broker = parse_broker_url(f"mqtt://127.0.0.1:{cport}")
        cols = [Collector(db.url, broker, client_id=f"c{i}", share_group="bbt", batch_ms=20) for i in range(2)]
        for c in cols:
            c.start()
            assert c.connected.wait(10)
        down: list[str] = []
        pc = publisher(eport, "pc-bridge-test")
        pc.on_message = lambda c, u, m: down.append(m.topic)
        pc.subscribe([(protocol.cmd_topic("s1", "pc1"), 1), (protocol.policy_topic("s1"), 1)])
        t0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
        time.sleep(1.0)  # the bridge connects (restart_timeout) and subscribes
        infos = [pc.publish(protocol.events_topic("s1", "pc1"), protocol.dumps(protocol.make_event(
            f"e{i}", i, "heartbeat", t0 + timedelta(minutes=i), {"in_use": False, "idle_s": 1, "cpu_pct": 1.0,
                                                                  "mem_pct": 1.0, "disk_pct": 1.0, "uptime_s": i})),
            qos=1) for i in range(100)]
        for info in infos:
            info.wait_for_publish(10)
        wait_for(lambda: sum(c.totals.stored for c in cols) >= 100, 20, what="bridged events stored")
        assert all(c.totals.stored for c in cols)  # shared between the two
        central = publisher(cport, "collector-side")
        central.publish(protocol.cmd_topic("s1", "pc1"), b'{"id":"x"}', qos=1).wait_for_publish(5)
        central.publish(protocol.policy_topic("s1"), b"{}", qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: len(down) >= 2, 10, what="command and policy bridged down to the edge")
        close(central)
        close(pc)
    finally:
        for c in cols:
            c.stop()
        for p in procs:
            p.terminate()
            p.wait(10)
    assert db.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == 100


def test_postgresql_settings_exist(pg_url: str) -> None:
    from collector.db import connect

    names = re.findall(r"(?m)^([a-z_]+)\s*=", (DEPLOY / "district" / "postgresql-bbt.conf").read_text())
    db = connect(pg_url)
    try:
        known = {r["name"] for r in db.query("SELECT name FROM pg_settings")}
    finally:
        db.close()
    assert len(names) > 10 and not sorted(set(names) - known)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bbt.district.lan")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("bbt.district.lan")]), critical=False)
            .sign(key, hashes.SHA256()))
    crt, pem = folder / "dashboard.crt", folder / "dashboard.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return crt, pem


def test_nginx_config_and_a_request_through_it(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        if os.environ.get("CI"):
            pytest.fail("nginx missing with CI=true (scripts/bootstrap.sh test installs it)")
        pytest.skip("nginx not installed")
    crt, key = _self_signed(tmp_path)
    http, https, app_port = free_port(), free_port(), free_port()
    site = (DEPLOY / "district" / "nginx-bbt.conf").read_text(encoding="utf-8")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http};")
    site = site.replace("listen 443 ssl", f"listen 127.0.0.1:{https} ssl")
    site = site.replace("/etc/bbt/tls/dashboard.crt", str(crt)).replace("/etc/bbt/tls/dashboard.key", str(key))
    site = re.sub(r"server 127\.0\.0\.1:808[12]", f"server 127.0.0.1:{app_port}", site, count=1)
    site = re.sub(r"\n\s*server 127\.0\.0\.1:8082[^\n]*", "", site)
    (tmp_path / "site.conf").write_text(site, encoding="utf-8")
    (tmp_path / "logs").mkdir()
    main_conf = tmp_path / "nginx.conf"
    main_conf.write_text(f"""daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/logs/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body; proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fcgi; uwsgi_temp_path {tmp_path}/uwsgi; scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""", encoding="utf-8")
    t = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main_conf)], capture_output=True, text=True,
                       timeout=30)
    assert t.returncode == 0, t.stderr
    from tests.browser import serve
    from tests.dash import make_app
    app = make_app(str(tmp_path / "bbt.db"), TRUST_PROXY=True)
    with serve(app, port=app_port):
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(main_conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_port(https)
            ctx = ssl.create_default_context(cafile=str(crt))
            # resolve the certificate's name to the test listener
            orig = socket.getaddrinfo
            socket.getaddrinfo = lambda host, *a, **k: orig("127.0.0.1" if host == "bbt.district.lan" else host,
                                                            *a, **k)  # type: ignore[assignment]
            try:
                with urllib.request.urlopen(f"https://bbt.district.lan:{https}/login", context=ctx, timeout=10) as r:
                    body = r.read().decode("utf-8")
                    assert r.status == 200 and r.headers["Strict-Transport-Security"]
                assert "登录" in body
                req = urllib.request.Request(f"http://127.0.0.1:{http}/login")
                opener = urllib.request.build_opener(NoRedirect())
                with pytest.raises(urllib.error.HTTPError) as e:
                    opener.open(req, timeout=10)
                assert e.value.code == 301 and e.value.headers["Location"].startswith("https://")
                e.value.close()
            finally:
                socket.getaddrinfo = orig  # type: ignore[assignment]
        finally:
            proc.terminate()
            proc.wait(10)
            app.extensions["bbt_db"].close()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return None
