"""Enrolment end to end against `bbt server` with its embedded broker (issue 22): an agent with only the
school's secret comes online with its own credentials and the pinned key; forged policy and commands
are refused and reported; a revoked PC is cut off; an old or expired secret is refused."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import protocol
from collector import migrations
from collector.db import Database, connect
from collector.devices import commands, school_keys
from collector.intake import credentials, enrolment
from common import signing
from common.enrolwire import answer_text, mac, request_text
from common.mqttconf import release_sockets
from tests.agent_helpers import FAST
from tests.brokers import free_port
from tests.helpers import ROOT, bbt_cmd, run_bbt, wait_for


class ServerRig:
    def __init__(self, tmp: Path, *extra: str, start: bool = True) -> None:
        self.tmp = tmp
        self.extra = extra
        self.scheme = "mqtts" if "--mqtt-tls" in extra else "mqtt"
        self.db_path = str(tmp / "bbt.db")
        r = run_bbt("enrol-token", "--school", "s1", "--db", self.db_path)
        assert r.returncode == 0, r.stderr
        self.secret = r.stdout.strip().splitlines()[-1]
        assert f"enrol_secret = {self.secret}" in r.stderr
        self.http, self.mqtt = free_port(), free_port()
        self.log = tmp / "server.log"
        self.db: Database = connect(self.db_path)
        self.agents: list[subprocess.Popen[bytes]] = []
        self.proc: subprocess.Popen[bytes] | None = None
        if start:
            self.start()

    def start(self) -> None:
        with self.log.open("wb") as f:
            self.proc = subprocess.Popen(bbt_cmd("server", "--db", self.db_path, "--http", f"127.0.0.1:{self.http}",
                                                 "--mqtt-port", str(self.mqtt), *self.extra), cwd=ROOT, stdout=f,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: "bbt server:" in self.log.read_text(), 30, what="the server's start-up line")

    def agent(self, device: str, secret: str) -> subprocess.Popen[bytes]:
        env = dict(os.environ, BBT_AGENT_DATA_DIR=str(self.tmp / f"agent-{device}"), **FAST)
        with (self.tmp / f"agent-{device}.log").open("ab") as f:
            p = subprocess.Popen(bbt_cmd("-v", "agent", "run", "--broker", f"{self.scheme}://localhost:{self.mqtt}",
                                         "--school",
                                         "s1", "--device", device, "--enrol-secret", secret, "--enrol-url",
                                         f"http://127.0.0.1:{self.http}"), cwd=ROOT, env=env, stdout=f,
                                 stderr=subprocess.STDOUT)
        self.agents.append(p)
        return p

    def agent_log(self, device: str) -> str:
        return (self.tmp / f"agent-{device}.log").read_text(errors="replace")

    def events(self, device: str, etype: str) -> list[dict[str, Any]]:
        return self.db.query("SELECT type, data FROM events WHERE device = ? AND type = ?", (device, etype))

    def stop(self) -> None:
        for p in [*self.agents, *([self.proc] if self.proc else [])]:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.db.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[ServerRig]:
    r = ServerRig(tmp_path)
    yield r
    r.stop()
    assert r.proc is not None and r.proc.returncode == 0, r.log.read_text()


def collector_client(rig: ServerRig) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-admin-tool")
    c.username_pw_set(credentials.COLLECTOR_USER, credentials.collector_password(rig.db))
    c.connect("127.0.0.1", rig.mqtt)
    c.loop_start()
    return c


def test_enrol_then_signed_only_then_revoked(rig: ServerRig) -> None:
    line = rig.log.read_text()
    assert f"listening on 127.0.0.1:{rig.mqtt}: this computer only" in line  # --http on loopback
    rig.agent("pc-1", rig.secret)
    # 1. enrolled: its own credentials, the school's key pinned, its events stored
    wait_for(lambda: rig.events("pc-1", "power"), 30, what="pc-1's power event stored")
    state = json.loads((rig.tmp / "agent-pc-1" / "enrolment.json").read_text())
    assert state["command_key"] == school_keys.public_key(rig.db, "s1")
    shown = run_bbt("school-key", "--school", "s1", "--db", rig.db_path)  # for PCs that do not enrol
    assert shown.returncode == 0 and shown.stdout.strip() == f"command_key = {state['command_key']}"
    assert state["username"] == "pc-1" and state["password"] and rig.secret not in json.dumps(state)
    row = credentials.get(rig.db, "pc-1")
    assert row is not None and row["school"] == "s1" and state["password"] not in row["secret_hash"]
    assert oct((rig.tmp / "agent-pc-1" / "enrolment.json").stat().st_mode & 0o777) == "0o600"
    assert rig.secret not in rig.log.read_text() and credentials.collector_password(rig.db) not in rig.log.read_text()

    # 2. a signed command from the CLI reaches it and is acked (the CLI uses the collector's account)
    r = run_bbt("cmd", "message", "pc-1", "--school", "s1", "--text", "你好", "--db", rig.db_path, "--broker",
                f"mqtt://127.0.0.1:{rig.mqtt}")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: rig.db.query("SELECT 1 AS x FROM commands WHERE state = 'acked'"), 15, what="ack stored")

    # 3. forged commands and policy (as someone holding the broker's collector account): refused, reported
    other = Ed25519PrivateKey.generate()
    created = commands.create(rig.db, "shutdown", {"delay_s": 600}, [("s1", "pc-1")])
    created += commands.create(rig.db, "shutdown", {"delay_s": 600}, [("s1", "pc-1")])
    tool = collector_client(rig)
    try:
        time.sleep(0.5)
        tool.publish(protocol.cmd_topic("s1", "pc-1"), protocol.dumps(created[0]["command"]), qos=1).wait_for_publish(5)
        tool.publish(protocol.cmd_topic("s1", "pc-1"), protocol.dumps(signing.sign(created[1]["command"], other)),
                     qos=1).wait_for_publish(5)
        tool.publish(protocol.policy_topic("s1"), protocol.dumps({"software": {"deny": ["*"], "action": "block"}}),
                     qos=1, retain=True).wait_for_publish(5)
    finally:
        tool.disconnect()
        tool.loop_stop()
        release_sockets(tool)
    failed = wait_for(lambda: (rows := rig.db.query("SELECT id, error FROM commands WHERE state = 'failed'"))
                      and len(rows) == 2 and rows, 15, what="both forged commands refused")
    errors = {r["id"]: r["error"] for r in failed}
    assert "unsigned" in errors[created[0]["command"]["id"]]
    assert "not the pinned key" in errors[created[1]["command"]["id"]]
    fault = wait_for(lambda: rig.events("pc-1", "fault"), 15, what="untrusted_policy fault stored")
    assert any(json.loads(f["data"])["code"] == "untrusted_policy" for f in fault)
    assert "power off requested" not in rig.agent_log("pc-1")

    # 4. revoked: the connection is dropped (the Last Will marks it offline) and it cannot come back
    r = run_bbt("device", "revoke", "pc-1", "--school", "s1", "--db", rig.db_path)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: rig.db.query("SELECT 1 AS x FROM devices WHERE device = 'pc-1' AND online = 0"), 15,
             what="pc-1 offline after revocation")
    wait_for(lambda: "broker refused the agent" in rig.agent_log("pc-1")
             or "Not authorized" in rig.agent_log("pc-1"), 20, what="its reconnection refused")
    time.sleep(2)
    assert "enrolling again failed" in rig.agent_log("pc-1") and "was revoked" in rig.agent_log("pc-1")
    assert not rig.db.query("SELECT 1 AS x FROM devices WHERE device = 'pc-1' AND online = 1")

    # 5. reset by an admin: the agent enrols again by itself (same pinned key) and comes back online
    r = run_bbt("device", "reset", "pc-1", "--school", "s1", "--db", rig.db_path)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: rig.db.query("SELECT 1 AS x FROM devices WHERE device = 'pc-1' AND online = 1"), 60,
             what="pc-1 back online after the reset")
    assert "enrolled s1/pc-1 (the broker had refused it)" in rig.agent_log("pc-1")
    assert json.loads((rig.tmp / "agent-pc-1" / "enrolment.json").read_text())["password"] != state["password"]


def test_an_old_secret_is_refused(rig: ServerRig) -> None:
    r = run_bbt("enrol-token", "--school", "s1", "--rotate", "--db", rig.db_path)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] != rig.secret
    rig.agent("pc-2", rig.secret)
    wait_for(lambda: "wrong enrolment secret" in rig.agent_log("pc-2"), 20, what="the old secret refused")
    assert credentials.get(rig.db, "pc-2") is None
    assert not (rig.tmp / "agent-pc-2" / "enrolment.json").exists()


def test_an_agent_started_before_the_server_collects_then_enrols(tmp_path: Path) -> None:
    """The server is down at install time: the agent starts anyway (reporting only), keeps its events, and
    enrols when the broker first refuses it; from then on the received key is pinned."""
    rig = ServerRig(tmp_path, start=False)
    try:
        rig.agent("pc-early", rig.secret)
        wait_for(lambda: "starting unenrolled" in rig.agent_log("pc-early"), 20, what="the agent started unenrolled")
        time.sleep(1.5)  # its first events wait in the outbox
        rig.start()
        wait_for(lambda: rig.events("pc-early", "power"), 60, what="the early power event stored")
        assert "command key pinned" in rig.agent_log("pc-early")
        r = run_bbt("cmd", "message", "pc-early", "--school", "s1", "--text", "hi", "--db", rig.db_path, "--broker",
                    f"mqtt://127.0.0.1:{rig.mqtt}")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: rig.db.query("SELECT 1 AS x FROM commands WHERE state = 'acked'"), 15, what="signed ack")
        forged = commands.create(rig.db, "shutdown", {"delay_s": 600}, [("s1", "pc-early")])[0]["command"]
        tool = collector_client(rig)
        try:
            time.sleep(0.5)
            tool.publish(protocol.cmd_topic("s1", "pc-early"), protocol.dumps(forged), qos=1).wait_for_publish(5)
        finally:
            tool.disconnect()
            tool.loop_stop()
            release_sockets(tool)
        row = wait_for(lambda: rig.db.query("SELECT error FROM commands WHERE state = 'failed'"), 15,
                       what="the unsigned shutdown refused")[0]
        assert "unsigned" in row["error"], "refused by the pinned key's gate, not only as an unpinned agent"
    finally:
        rig.stop()


def test_tls_with_a_generated_school_ca(tmp_path: Path) -> None:
    """`bbt server --mqtt-tls`: the broker speaks TLS only; enrolment hands the PC the CA it then pins."""
    rig = ServerRig(tmp_path, "--mqtt-tls")
    try:
        assert "; TLS, CA " in rig.log.read_text()
        rig.agent("pc-t", rig.secret)
        wait_for(lambda: rig.events("pc-t", "power"), 30, what="pc-t's events over TLS")
        ca = (rig.tmp / "agent-pc-t" / "broker-ca.pem").read_text()
        assert ca == (Path(rig.db_path).parent / "broker-pki" / "ca.crt").read_text()
        # plain MQTT to the TLS port gets nowhere, even with good credentials
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="probe")
        c.username_pw_set(credentials.COLLECTOR_USER, credentials.collector_password(rig.db))
        rc: list[Any] = []
        c.on_connect = lambda cl, u, f, r, p=None: rc.append(r)
        try:
            c.connect("127.0.0.1", rig.mqtt)
            c.loop_start()
            time.sleep(2)
        except OSError:
            pass
        assert not rc or rc[0].is_failure
        c.loop_stop()
        release_sockets(c)
    finally:
        rig.stop()


# -- the exchange without processes -----------------------------------------------------------------

def request(school: str, device: str, secret: str, nonce: str = "n" * 32) -> dict[str, Any]:
    return {"school": school, "device": device, "nonce": nonce,
            "proof": mac(secret, request_text(school, device, nonce))}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = connect(str(tmp_path / "e.db"))
    migrations.migrate(d)
    yield d
    d.close()


def test_the_exchange_rules(db: Database) -> None:
    now = time.time()
    secret = enrolment.rotate(db, "s1", "test", days=1, now=now)["secret"]
    answer = enrolment.enrol(db, request("s1", "pc-1", secret), "10.0.0.5", now=now)
    assert answer["mac"] == mac(secret, answer_text(answer))
    assert answer["command_key"] == school_keys.public_key(db, "s1")
    row = credentials.get(db, "pc-1")
    assert row is not None and credentials.verify_secret(row["secret_hash"], answer["password"])
    cases = [(request("s1", "pc-1", secret), now, 409, "already enrolled"),
             (request("s1", "pc-2", "bbt-guess"), now, 403, "wrong enrolment secret"),
             (request("s1", "pc-3", secret), now + 2 * 86400, 403, "expired"),
             (request("s9", "pc-4", secret), now, 403, "no enrolment secret"),
             (request("s1", "bad id", secret), now, 400, "must match"),
             ({"school": "s1"}, now, 400, "'device'"), ([1, 2], now, 400, "missing")]
    for req, when, status, words in cases:
        with pytest.raises(enrolment.EnrolError, match=words) as e:
            enrolment.enrol(db, req, "10.0.0.6", now=when)
        assert e.value.status == status
    credentials.revoke(db, "s1", "pc-1", "test")
    with pytest.raises(enrolment.EnrolError, match="revoked"):
        enrolment.enrol(db, request("s1", "pc-1", secret, "m" * 32), "10.0.0.5", now=now)
    credentials.reset(db, "s1", "pc-1", "test")
    assert enrolment.enrol(db, request("s1", "pc-1", secret, "m" * 32), "10.0.0.5", now=now)["device"] == "pc-1"
    actions = [r["action"] for r in db.query("SELECT action FROM audit ORDER BY id")]
    assert actions.count("enrol.refused") == len(cases) + 1 and "device.revoke" in actions and "device.reset" in actions


def test_http_endpoint_and_rate_limit(db: Database) -> None:
    from dashboard import create_app

    secret = enrolment.rotate(db, "s1", "test")["secret"]
    app = create_app({"BBT_DB": db.url, "TESTING": True})
    client = app.test_client()
    ok = client.post("/api/v1/enrol", json=request("s1", "pc-1", secret))
    assert ok.status_code == 200 and ok.get_json()["username"] == "pc-1"
    for i in range(20):
        r = client.post("/api/v1/enrol", json=request("s1", f"x-{i}", "bbt-wrong"))
        assert r.status_code == 403 and r.get_json()["error"] == "enrolment_refused"
    r = client.post("/api/v1/enrol", json=request("s1", "pc-2", secret))
    assert r.status_code == 429, "after 20 refusals this address waits, even with the right secret"
    app.config["EXTERNAL_BROKER"] = True  # `bbt server --broker ...`: the accounts are Mosquitto's, not ours
    r = client.post("/api/v1/enrol", json=request("s1", "pc-3", secret))
    assert r.status_code == 409 and "bbt deploy" in r.get_json()["message"]
    assert credentials.get(db, "pc-3") is None


def test_admin_page_shows_rotates_and_revokes(tmp_path: Path) -> None:
    from tests.dash import USERS, add_users, csrf_of, login, make_app, seed_school

    app = make_app(str(tmp_path / "bbt.db"), MQTT_PORT=1883)
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    try:
        first = enrolment.rotate(db, "s1", "test")["secret"]
        credentials.provision(db, "s1", "pc-101", "test")
        maintainer = app.test_client()
        login(maintainer, USERS["maintainer"][0])
        assert maintainer.get("/admin/enrolment?school=s1").status_code == 403, "admins only"
        client = app.test_client()
        login(client, USERS["admin"][0])
        page = client.get("/admin/enrolment?school=s1").get_data(as_text=True)
        assert first in page and "enrol_secret = " + first in page and "mqtt://localhost:1883" in page
        assert "pc-101" in page and "电脑注册" in page
        token = csrf_of(page)
        r = client.post("/admin/enrolment", data={"school": "s1", "action": "rotate", "days": "7",
                                                  "csrf_token": token})
        assert r.status_code == 302
        second = enrolment.current(db, "s1")
        assert second is not None and second["secret"] != first
        assert 6.9 * 86400 < second["expires"] - time.time() <= 7 * 86400
        r = client.post("/admin/enrolment", data={"school": "s1", "action": "revoke", "device": "pc-101",
                                                  "csrf_token": token})
        assert r.status_code == 302
        row = credentials.get(db, "pc-101")
        assert row is not None and row["revoked"] is not None and row["revoked_by"] == USERS["admin"][0]
        assert "已吊销" in client.get("/admin/enrolment?school=s1").get_data(as_text=True)
        r = client.post("/admin/enrolment", data={"school": "s1", "action": "rotate", "days": "x",
                                                  "csrf_token": token}, follow_redirects=True)
        assert "有效天数必须是数字" in r.get_data(as_text=True)
        assert enrolment.current(db, "s1") == second, "a bad form changes nothing"
    finally:
        db.close()
