"""The fault-injection rig: real Mosquitto, real `bbt collect` and `bbt agent run` processes, and a
TCP proxy between agents and broker that the test can cut. Faults are injected from outside
(SIGKILL, SIGTERM, closed sockets, a full file system) and every run ends by counting."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from tests.brokers import Mosquitto, TcpProxy
from tests.helpers import ROOT, bbt_cmd

SCHOOL = "f1"
SUMMARY = Path(ROOT) / "test-artifacts" / "faults-summary.md"


@dataclass
class Counts:
    device: str
    published: int = 0    # numbered by the agent's outbox and gone from it (the broker acknowledged them)
    left: int = 0         # still waiting in the outbox
    stored: int = 0       # rows in the collector's events table
    distinct: int = 0     # distinct seqs among them (stored - distinct = duplicates)
    missing: list[int] = field(default_factory=list)  # published but not stored

    @property
    def ok(self) -> bool:
        return self.left == 0 and not self.missing and self.stored == self.distinct == self.published


class Rig:
    def __init__(self, folder: Path, db_path: str | None = None) -> None:
        self.folder = folder
        self.broker = Mosquitto(folder / "broker", extra="autosave_on_changes true\n")
        if os.geteuid() == 0 and "user root" not in self.broker.conf.read_text():
            # as root, Mosquitto drops to 'mosquitto', which cannot write the test's folder (persistence)
            self.broker.conf.write_text(self.broker.conf.read_text() + "user root\n")
        self.broker.start()
        self.proxy = TcpProxy(self.broker.port)
        self.db_path = db_path or str(folder / "bbt.db")
        self.collector: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.log: list[str] = []
        self.t0 = time.monotonic()
        self.env = dict(os.environ, BBT_BACKUP="0", PYTHONUNBUFFERED="1")
        self.replay_rate = 20.0

    def note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self.t0:6.1f}s {what}")

    # -- processes ------------------------------------------------------------------
    def start_collector(self, wait: bool = False) -> None:
        log_path = self.folder / "collector.log"
        seen = log_path.read_text(errors="replace").count("collector connected") if log_path.exists() else 0
        with log_path.open("ab") as log:
            self.collector = subprocess.Popen(
                bbt_cmd("collect", "--db", self.db_path, "--broker", self.broker.url, "--client-id", "faults-col"),
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait:  # the first start: its persistent session must exist before agents publish
            deadline = time.monotonic() + 20
            while log_path.read_text(errors="replace").count("collector connected") <= seen:
                if time.monotonic() > deadline or self.collector.poll() is not None:
                    raise AssertionError("the collector did not connect: " + log_path.read_text()[-2000:])
                time.sleep(0.05)
            time.sleep(0.3)  # SUBACK

    def kill_collector(self) -> None:
        _kill(self.collector)

    def agent_dir(self, device: str) -> Path:
        return self.folder / "agents" / device

    def start_agent(self, device: str) -> None:
        env = dict(self.env, BBT_AGENT_DATA_DIR=str(self.agent_dir(device)), BBT_AGENT_HEARTBEAT_S="1",
                   BBT_AGENT_REPLAY_RATE=str(self.replay_rate))
        with (self.folder / f"agent-{device}.log").open("ab") as log:
            self.agents[device] = subprocess.Popen(
                bbt_cmd("agent", "run", "--broker", f"mqtt://127.0.0.1:{self.proxy.port}", "--school", SCHOOL,
                        "--device", device), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def prefill(self, device: str, n: int) -> None:
        """A backlog of ``n`` heartbeats from a time the PC was offline, replayed when the agent starts."""
        import uuid
        from datetime import datetime, timedelta

        import protocol
        from agent.outbox import Outbox

        box = Outbox(str(self.agent_dir(device) / "outbox.db"))
        t0 = datetime.now(UTC) - timedelta(hours=3)
        rows = []
        for seq in range(n):
            ev = protocol.make_event(uuid.uuid4().hex, seq, "heartbeat", t0 + timedelta(seconds=seq),
                                     {"in_use": seq % 3 == 0, "idle_s": 5, "cpu_pct": 3.0, "backlog": True})
            rows.append((seq, "heartbeat", json.dumps(ev, separators=(",", ":")), time.time()))
        db = box._db
        db.execute("BEGIN")
        db.executemany("INSERT INTO outbox (seq, type, body, created) VALUES (?, ?, ?, ?)", rows)
        db.execute("INSERT INTO meta (key, value) VALUES ('next_seq', ?)", (str(n),))
        db.execute("COMMIT")
        box.close()

    def kill_agent(self, device: str) -> None:
        _kill(self.agents.get(device))

    def stop_agents(self) -> None:
        for p in self.agents.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.agents.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                _kill(p)

    def close(self) -> None:
        for p in [*self.agents.values(), self.collector]:
            _kill(p)
        self.proxy.close()
        self.broker.stop()

    # -- counting -------------------------------------------------------------------------
    def outbox(self, device: str) -> tuple[int, set[int]]:
        """(next seq, seqs still waiting) of a device's outbox."""
        db = sqlite3.connect(str(self.agent_dir(device) / "outbox.db"), timeout=10)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            left = {r[0] for r in db.execute("SELECT seq FROM outbox")}
        finally:
            db.close()
        return int(row[0]) if row else 0, left

    def stored(self) -> dict[str, list[int]]:
        db = sqlite3.connect(self.db_path, timeout=10)
        try:
            rows = db.execute("SELECT device, seq FROM events WHERE school = ?", (SCHOOL,)).fetchall()
        except sqlite3.OperationalError:  # not created yet
            rows = []
        finally:
            db.close()
        out: dict[str, list[int]] = {}
        for device, seq in rows:
            out.setdefault(device, []).append(seq)
        return out

    def count(self, first_seq: dict[str, int] | None = None) -> list[Counts]:
        """Per agent: everything numbered from ``first_seq`` (default 0) on and no longer waiting in the
        outbox must be stored exactly once."""
        boxes = {device: self.outbox(device) for device in sorted(self.agents)}
        stored = self.stored()  # read after the outboxes: whatever they show as published must be here
        out = []
        for device, (next_seq, in_box) in boxes.items():
            first = (first_seq or {}).get(device, 0)
            seqs = [s for s in stored.get(device, []) if s >= first]
            # a delivered event may stay in the outbox until the next one is written (DEFER_DELETE_MAX)
            left = in_box - set(seqs)
            published = set(range(first, next_seq)) - left
            out.append(Counts(device, len(published), len(left), len(seqs), len(set(seqs)),
                              sorted(published - set(seqs))[:20]))
        return out

    def settled(self, first_seq: dict[str, int] | None = None) -> bool:
        return all(c.ok for c in self.count(first_seq))


def _kill(p: subprocess.Popen[bytes] | None) -> None:
    if p is not None and p.poll() is None:
        p.kill()
    if p is not None:
        p.wait(10)


def write_summary(section: str, rig: Rig, counts: list[Counts], extra: dict[str, Any]) -> None:
    """Append one run's faults and counts to test-artifacts/faults-summary.md (and .json)."""
    SUMMARY.parent.mkdir(exist_ok=True)
    lines = [f"## {section}", "", *(f"- {x}" for x in rig.log), "",
             "| device | published | stored | duplicates | missing | left in outbox |",
             "|---|---|---|---|---|---|"]
    for c in counts:
        lines.append(f"| {c.device} | {c.published} | {c.stored} | {c.stored - c.distinct} | {len(c.missing)} | "
                     f"{c.left} |")
    total_pub = sum(c.published for c in counts)
    total_st = sum(c.stored for c in counts)
    lines += ["", f"Total: published {total_pub}, stored {total_st}, "
                  f"{'OK' if total_pub == total_st else 'MISMATCH'}. {json.dumps(extra, ensure_ascii=False)}", "", ""]
    with SUMMARY.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines))
