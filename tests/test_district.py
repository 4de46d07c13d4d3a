"""District done-when: two `bbt collect` processes on one shared subscription, PostgreSQL and a
real Mosquitto; one collector is killed with SIGKILL mid-stream; every event is stored exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import protocol
from collector.db import connect
from collector.devices.registry import ingest_stats
from tests.brokers import Mosquitto
from tests.helpers import ROOT, bbt_cmd, close, publisher, wait_for

DEVICES = 200
PER_DEVICE = 50
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def start_collector(tmp: Path, name: str, db_url: str, broker: str) -> subprocess.Popen[bytes]:
    log = (tmp / f"{name}.log").open("ab")
    try:
        return subprocess.Popen(bbt_cmd("collect", "--db", db_url, "--broker", broker, "--share-group", "g",
                                        "--client-id", name, "--batch-ms", "20"),
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    finally:
        log.close()


def connected(tmp: Path, *names: str) -> bool:
    """Each collector logs this after its on_connect sent the SUBSCRIBE."""
    logs = [tmp / f"{n}.log" for n in names]
    return all(p.exists() and "collector connected" in p.read_text(errors="replace") for p in logs)


def count(db_url: str) -> int:
    db = connect(db_url)
    try:
        return int(db.query("SELECT COUNT(*) AS n FROM events")[0]["n"])
    finally:
        db.close()


def stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def test_two_collectors_one_killed_every_event_exactly_once(mosquitto: Mosquitto, pg_url: str,
                                                            tmp_path: Path) -> None:
    c1 = start_collector(tmp_path, "col-1", pg_url, mosquitto.url)
    c2 = start_collector(tmp_path, "col-2", pg_url, mosquitto.url)
    procs = [c1, c2]
    pub = publisher(mosquitto.port, "sim-pool")
    try:
        wait_for(lambda: connected(tmp_path, "col-1", "col-2"), 20, what="both collectors connected")
        time.sleep(0.5)  # the SUBACKs
        total = DEVICES * PER_DEVICE
        killed = False
        infos = []
        for seq in range(PER_DEVICE):
            for d in range(DEVICES):
                ev = protocol.make_event(f"e{d}-{seq}", seq, "heartbeat", T0 + timedelta(seconds=seq),
                                         {"in_use": True, "idle_s": 1, "cpu_pct": 1.0, "mem_pct": 1.0,
                                          "disk_pct": 1.0, "uptime_s": seq})
                infos.append(pub.publish(protocol.events_topic("s1", f"pc{d:03d}"), protocol.dumps(ev), qos=1))
            if seq == PER_DEVICE // 3:
                wait_for(lambda: count(pg_url) > 0, 20, what="ingest under way")
            if not killed and seq == PER_DEVICE // 2:
                os.kill(c1.pid, signal.SIGKILL)  # mid-stream, with messages in flight
                c1.wait()
                killed = True
        for info in infos:
            info.wait_for_publish(30)
        assert all(i.is_published() for i in infos)
        mid = count(pg_url)
        assert 0 < mid <= total
        # Mosquitto keeps a killed member's persistent session in the group: what it had in flight,
        # and its share of what came after, wait there until systemd restarts it with the same
        # client id (deploy/district). Nothing is lost meanwhile, and nothing may be stored twice.
        procs.append(start_collector(tmp_path, "col-1", pg_url, mosquitto.url))
        wait_for(lambda: count(pg_url) >= total, 60, interval=0.3, what=f"{total} events stored")
        time.sleep(1.0)  # nothing more may arrive (a duplicate would show as a second row or count)
        db = connect(pg_url)
        try:
            assert count(pg_url) == total
            values = ingest_stats(db)
            assert values["stored"] == total and values["rejected"] == 0
            devices = db.query("SELECT device, last_seq FROM devices ORDER BY device")
            assert len(devices) == DEVICES and {d["last_seq"] for d in devices} == {PER_DEVICE - 1}
            assert db.query("SELECT COUNT(*) AS n FROM gaps WHERE closed IS NULL")[0]["n"] == 0
        finally:
            db.close()
    finally:
        close(pub)
        for p in procs:
            stop(p)
    assert c1.returncode == -signal.SIGKILL


def test_bbt_server_on_postgresql(mosquitto: Mosquitto, pg_url: str, tmp_path: Path) -> None:
    """`bbt server --db postgresql://...`: collector and dashboard on the PostgreSQL store."""
    import urllib.request

    from tests.brokers import free_port

    port = free_port()
    log = (tmp_path / "server.log").open("ab")
    try:
        srv = subprocess.Popen(bbt_cmd("server", "--db", pg_url, "--broker", mosquitto.url, "--http",
                                       f"127.0.0.1:{port}", "--share-group", "g", "--client-id", "web-1"),
                               cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()
    pub = publisher(mosquitto.port, "pc-x")
    try:
        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(up, 30, interval=0.2, what="the dashboard")
        ev = protocol.make_event("e1", 0, "power", T0, {"state": "on", "boot_time": "2026-11-23T08:00:00+08:00",
                                                         "clean": True})
        pub.publish(protocol.events_topic("s1", "pc-x"), protocol.dumps(ev), qos=1).wait_for_publish(5)
        wait_for(lambda: count(pg_url) == 1, 20, what="the event stored in PostgreSQL")
    finally:
        close(pub)
        stop(srv)
    assert srv.returncode == 0
