"""End to end: a real agent process -> Mosquitto -> `bbt server` -> SQLite -> the HTTP API."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from tests.brokers import Mosquitto, free_port
from tests.helpers import ROOT, bbt_cmd, run_bbt, wait_for


def api(port: int, path: str, token: str) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def make_token(db: str) -> str:
    r = run_bbt("user", "add", "admin", "--role", "admin", "--password-stdin", "--db", db, input="admin-pass-1\n")
    assert r.returncode == 0, r.stderr
    r = run_bbt("token", "create", "--user", "admin", "--db", db)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_agent_online_then_offline_by_last_will(mosquitto: Mosquitto, tmp_path: Path) -> None:
    db = str(tmp_path / "bbt.db")
    token = make_token(db)
    http = free_port()
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(bbt_cmd("server", "--db", db, "--broker", mosquitto.url, "--http", f"127.0.0.1:{http}"),
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    agent_env = dict(os.environ, BBT_AGENT_DATA_DIR=str(tmp_path / "agent"), BBT_AGENT_HEARTBEAT_S="1")
    agent = subprocess.Popen(bbt_cmd("agent", "run", "--broker", mosquitto.url, "--school", "s1", "--device", "pc-101"),
                             cwd=ROOT, env=agent_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def device() -> dict | None:
            try:
                rows = api(http, "/api/v1/devices?school=s1", token)
            except OSError:
                return None
            assert isinstance(rows, list)
            return next((d for d in rows if d["device"] == "pc-101"), None)

        online = wait_for(lambda: (d := device()) and d["online"] and d, 30, what="pc-101 online")
        assert online["class"] is None and online["last_seen"].endswith("+08:00")
        stats = wait_for(lambda: (s := api(http, "/api/v1/stats/ingest", token)) and s["stored"] >= 2 and s,
                         15, what="power and heartbeat stored")
        assert stats["rejected"] == 0 and stats["duplicates"] == 0

        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        offline = wait_for(lambda: (d := device()) and not d["online"] and d, 15, what="pc-101 offline")
        assert offline["status_reason"] == "lost"
    finally:
        for p in (agent, server):
            if p.poll() is None:
                p.terminate()
                p.wait(15)
        log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()
