"""`bbt server` as supervised processes (bbt.processes): ingest and web children, restarted when they die.

Real Mosquitto and the embedded broker, events sent with the C client `mosquitto_pub`, the store read
back from SQLite, the dashboard over HTTP."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from collector import migrations
from collector.db import connect
from collector.intake import batch_relay, credentials
from dashboard.users import add_user, create_token
from tests.brokers import Mosquitto, free_port
from tests.helpers import ROOT, bbt_cmd, close, wait_for


def heartbeats(device: str, first: int, n: int) -> str:
    return "".join(json.dumps({"id": f"{device}-{i}", "seq": i, "type": "heartbeat", "ts": "2026-11-23T08:05:00+08:00",
                               "data": {"in_use": True, "idle_s": 3, "uptime_s": 60 + i}}) + "\n"
                   for i in range(first, first + n))


def stored(db: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


class Running:
    """`bbt server` (supervised) in a subprocess, its log in a file."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.db = str(tmp / "bbt.db")
        store = connect(self.db)
        migrations.migrate(store)
        add_user(store, "admin", "admin", "admin-pass-1", must_change=False)
        self.token = create_token(store, "admin")
        self.device_pw = credentials.provision(store, "s1", "pc-1", "test")
        store.close()
        self.http = free_port()
        self.log = tmp / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(bbt_cmd("server", "--db", self.db, "--http", f"127.0.0.1:{self.http}", *args),
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: "bbt server:" in self.text() or self.proc.poll() is not None, 60, what="start-up line")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self, role: str) -> list[int]:
        return [int(p) for p in re.findall(rf"started the {role} process \(pid (\d+)\)", self.text())]

    def api(self, path: str) -> object:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}",
                                     headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(40)
        return int(self.proc.returncode)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


def pub(port: int, lines: str, *auth: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l",
                          "-t", "bbt/v1/s1/pc-1/events", *auth], stdin=subprocess.PIPE, text=True)
    assert p.stdin is not None
    p.stdin.write(lines)
    p.stdin.close()
    return p


@pytest.fixture
def external(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Running]:
    srv = Running(tmp_path, "--broker", mosquitto.url)
    yield srv
    srv.stop()


def test_children_die_and_come_back_without_losing_events(external: Running, mosquitto: Mosquitto) -> None:
    srv = external
    [ingest], [web] = srv.pids("ingest"), srv.pids("web")
    assert alive(ingest) and alive(web)
    assert pub(mosquitto.port, heartbeats("pc-1", 0, 50)).wait(30) == 0
    wait_for(lambda: stored(srv.db) == 50, 20, what="the first 50 events stored")
    assert isinstance(srv.api("/api/v1/stats/ingest"), dict)

    # the ingest child killed while a stream of 3000 comes in: restarted, logged, nothing lost (QoS 1)
    sender = pub(mosquitto.port, heartbeats("pc-1", 50, 3000))
    wait_for(lambda: stored(srv.db) > 60, 20, what="the stream under way")
    os.kill(ingest, signal.SIGKILL)
    assert sender.wait(60) == 0
    wait_for(lambda: len(srv.pids("ingest")) == 2, 20, what="the ingest process restarted")
    assert re.search(rf"The ingest process \(pid {ingest}\) exited with code -9", srv.text())
    wait_for(lambda: stored(srv.db) == 3050, 60, what="every event stored after the restart")

    # the web child killed: restarted on the same socket, the dashboard answers again
    os.kill(web, signal.SIGKILL)
    wait_for(lambda: len(srv.pids("web")) == 2, 20, what="the web process restarted")
    assert re.search(rf"The web process \(pid {web}\) exited with code -9", srv.text())
    stats = wait_for(lambda: srv.api("/api/v1/stats/ingest"), 30, what="the dashboard back")
    assert isinstance(stats, dict) and stats["stored"] >= 3050

    # SIGTERM: every child gone, exit 0
    children = [*srv.pids("ingest"), *srv.pids("web")]
    assert srv.stop() == 0, srv.text()
    assert not any(alive(p) for p in children)


class Agent:
    """Publishes as an agent does (paho, QoS 1, stays connected)."""

    def __init__(self, port: int, password: str) -> None:
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pc-1")
        self.c.username_pw_set("pc-1", password)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def send(self, lines: str) -> None:
        for info in [self.c.publish("bbt/v1/s1/pc-1/events", line, qos=1) for line in lines.splitlines()]:
            info.wait_for_publish(20)


def test_embedded_broker_stays_with_the_supervisor(tmp_path: Path) -> None:
    port = free_port()
    srv = Running(tmp_path, "--mqtt-port", str(port))
    agent = Agent(port, srv.device_pw)
    try:
        agent.send(heartbeats("pc-1", 0, 200))
        wait_for(lambda: stored(srv.db) == 200, 20, what="events stored through the embedded broker")
        [ingest] = srv.pids("ingest")
        os.kill(ingest, signal.SIGKILL)
        agent.send(heartbeats("pc-1", 200, 200))  # while ingest is down: the broker keeps them
        wait_for(lambda: len(srv.pids("ingest")) == 2, 20, what="the ingest process restarted")
        wait_for(lambda: stored(srv.db) == 400, 30, what=f"later events stored ({stored(srv.db)} of 400)")
        assert isinstance(srv.api("/api/v1/stats/ingest"), dict)
    finally:
        close(agent.c)
        assert srv.stop() == 0, srv.text()


def test_one_process_mode_still_serves(mosquitto: Mosquitto, tmp_path: Path) -> None:
    srv = Running(tmp_path, "--broker", mosquitto.url, "--one-process")
    try:
        assert srv.pids("ingest") == []
        assert pub(mosquitto.port, heartbeats("pc-1", 0, 10)).wait(30) == 0
        wait_for(lambda: stored(srv.db) == 10, 20, what="events stored in one process")
    finally:
        assert srv.stop() == 0, srv.text()


def test_the_relay_tells_the_schools_of_each_stored_batch() -> None:
    receiver = batch_relay.RelayReceiver(batch_relay.bind())
    got: list[list[str]] = []
    receiver.add_listener(lambda batch, _result: got.append([b.school for b in batch]))
    receiver.start()
    sender = batch_relay.RelaySender(receiver.sock.getsockname()[1])
    try:
        sender([batch_relay.StoredBatch("s2"), batch_relay.StoredBatch("s1"), batch_relay.StoredBatch("s2")], None)
        wait_for(lambda: got, 5, what="the datagram")
        assert got == [["s1", "s2"]]
    finally:
        sender.close()
        receiver.stop()


def test_two_ingest_processes_share_the_stream(mosquitto: Mosquitto, tmp_path: Path) -> None:
    srv = Running(tmp_path, "--broker", mosquitto.url, "--ingest-processes", "2")
    try:
        assert len(srv.pids("ingest-1")) == 1 and len(srv.pids("ingest-2")) == 1
        assert pub(mosquitto.port, heartbeats("pc-1", 0, 2000)).wait(30) == 0
        wait_for(lambda: stored(srv.db) == 2000, 30, what="every event stored once by the two")
    finally:
        assert srv.stop() == 0, srv.text()
