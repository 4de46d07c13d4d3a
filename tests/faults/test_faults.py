"""Fault injection (pytest -m faults): kills, outages, network cuts, a full disk, a corrupted outbox.

Every scenario ends by counting, per agent: every event the agent numbered and the broker
acknowledged (gone from its outbox) is stored by the collector exactly once. The faults injected
and the counts go to test-artifacts/faults-summary.md. BBT_FAULTS_SEED replays a run's timing.
"""
from __future__ import annotations

import errno
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers import mosquitto_binary
from tests.faults.rig import SCHOOL, SUMMARY, Rig, write_summary
from tests.helpers import wait_for

pytestmark = [pytest.mark.faults,
              pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto not installed")]

DEVICES = ["pc-1", "pc-2", "pc-3"]
BACKLOG = 3000


@pytest.fixture(scope="module", autouse=True)
def summary_file() -> Iterator[None]:
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(f"# Fault-injection summary ({time.strftime('%Y-%m-%d %H:%M:%S')})\n\n"
                       "Each run ends by counting: events published (numbered by an agent and acknowledged by "
                       "the broker) = events stored, no duplicates.\n\n", encoding="utf-8")
    yield


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def collector_facts(rig: Rig) -> dict[str, int]:
    db = sqlite3.connect(rig.db_path, timeout=10)
    try:
        facts = dict(db.execute("SELECT name, value FROM counters").fetchall())
        facts["open_gaps"] = db.execute("SELECT COUNT(*) FROM gaps WHERE closed IS NULL AND school = ?",
                                        (SCHOOL,)).fetchone()[0]
    finally:
        db.close()
    return facts


def finish(rig: Rig, section: str, first_seq: dict[str, int] | None = None, **extra: object) -> dict[str, int]:
    """Heal, let the agents stop cleanly, wait until everything is stored, count, write the summary."""
    wait_for(lambda: all(not c.missing and c.left == 0 for c in rig.count(first_seq)), 45, 0.2,
             what="the backlog to drain")
    rig.stop_agents()
    for _ in range(2):  # an agent stopped while (re)connecting keeps its last events for its next start
        waiting = [c.device for c in rig.count(first_seq) if c.left]
        if not waiting:
            break
        rig.note(f"agents {waiting} stopped with events still queued (not connected at that moment): restarted")
        for d in waiting:
            rig.start_agent(d)
        wait_for(lambda: all(c.left == 0 for c in rig.count(first_seq)), 20, 0.2, what="the queue to drain")
        rig.stop_agents()
    try:
        wait_for(lambda: rig.settled(first_seq), 20, 0.2, what="every published event stored")
    finally:
        counts = rig.count(first_seq)
        facts = collector_facts(rig)
        write_summary(section, rig, counts, {**facts, **extra})
    for c in counts:
        log = rig.folder / f"agent-{c.device}.log"
        assert c.ok, (c, log.read_text(errors="replace")[-1500:] if log.exists() else "")
        assert c.published > 0
    return facts


def inject(rig: Rig, fault: str, rnd: random.Random) -> None:
    if fault == "kill_agent":
        device = rnd.choice(DEVICES)
        rig.kill_agent(device)
        down = rnd.uniform(0.2, 1.5)
        rig.note(f"SIGKILL agent {device}, restarted after {down:.1f}s")
        time.sleep(down)
        rig.start_agent(device)
    elif fault == "kill_collector":
        rig.kill_collector()
        down = rnd.uniform(0.2, 1.5)
        rig.note(f"SIGKILL collector, restarted after {down:.1f}s")
        time.sleep(down)
        rig.start_collector()
    elif fault == "kill_broker":
        rig.broker.kill()
        down = rnd.uniform(0.2, 1.0)
        rig.note(f"SIGKILL broker, restarted after {down:.1f}s")
        time.sleep(down)
        rig.broker.start()
    elif fault == "broker_down":
        rig.broker.stop()
        down = rnd.uniform(2.0, 3.0)
        rig.note(f"broker stopped for {down:.1f}s")
        time.sleep(down)
        rig.broker.start()
    elif fault == "net_cut":
        rig.proxy.cut()
        down = rnd.uniform(2.0, 3.0)
        rig.note(f"network between agents and broker cut for {down:.1f}s")
        time.sleep(down)
        rig.proxy.restore()
    else:  # pragma: no cover
        raise ValueError(fault)


def test_kills_outages_and_network_cuts(rig: Rig) -> None:
    seed = int(os.environ.get("BBT_FAULTS_SEED") or time.time())
    rnd = random.Random(seed)
    rig.note(f"seed {seed}; {len(DEVICES)} agents (heartbeat 1 s, each with a backlog of {BACKLOG} events "
             f"replayed at 1 message/s) -> TCP proxy -> Mosquitto -> bbt collect")
    rig.replay_rate = 1.0
    for d in DEVICES:
        rig.prefill(d, BACKLOG)
    rig.start_collector(wait=True)
    for d in DEVICES:
        rig.start_agent(d)
    wait_for(lambda: len(rig.stored()) == len(DEVICES), 30, 0.2, what="every agent stored once")
    faults = ["kill_agent", "kill_agent", "kill_collector", "kill_collector", "kill_broker", "broker_down",
              "net_cut"]
    rnd.shuffle(faults)
    for fault in faults:
        time.sleep(rnd.uniform(0.3, 1.5))
        inject(rig, fault, rnd)
    facts = finish(rig, "SIGKILL of agent, collector and broker; broker down; network cut", seed=seed)
    assert facts["open_gaps"] == 0, "no event lost: every seq gap seen during replay was filled"


def _mount_tmpfs(folder: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None or os.environ.get("BBT_FAULTS_NO_TMPFS"):
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(folder)], capture_output=True)
    return r.returncode == 0


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as f:
        for size in (1 << 20, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


def test_collector_disk_full_stops_acking_loses_nothing_and_recovers(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = _mount_tmpfs(disk)
    rig = Rig(tmp_path, db_path=str(disk / "bbt.db"))
    limit_fsize = not mounted  # no tmpfs allowed: the file-size limit of the collector's process instead

    def make_full() -> None:
        if mounted:
            _fill(disk)
        else:
            assert rig.collector is not None
            size = max(os.path.getsize(rig.db_path), os.path.getsize(rig.db_path + "-wal"))
            resource.prlimit(rig.collector.pid, resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))

    try:
        rig.note(f"collector's store on a {'24 MB tmpfs' if mounted else 'file-size-limited process'}")
        rig.start_collector(wait=True)
        for d in DEVICES[:2]:
            rig.start_agent(d)
        wait_for(lambda: len(rig.stored()) == 2, 30, 0.2, what="both agents stored")
        make_full()
        rig.note("disk full")

        def total() -> int:
            return sum(len(v) for v in rig.stored().values())

        # the collector notices at its next commit; from then on nothing more is stored
        def stuck() -> bool:
            before = total()
            time.sleep(1.5)
            return total() == before
        wait_for(stuck, 20, 0, what="storing to stop")
        frozen = total()
        time.sleep(2.0)
        assert total() == frozen, "nothing is stored while the disk is full"
        assert rig.collector is not None and rig.collector.poll() is None, "the collector keeps running"
        assert all(rig.outbox(d)[1].__len__() <= 2 for d in DEVICES[:2]), "the broker keeps accepting"
        log = (tmp_path / "collector.log").read_text(errors="replace")
        assert "could not store" in log, log[-2000:]
        rig.kill_collector()
        rig.start_collector()
        if limit_fsize:
            make_full()
        rig.note("collector SIGKILLed while the disk is full and restarted (still full)")
        time.sleep(2.0)
        assert total() == frozen
        if mounted:
            (disk / "filler").unlink()
        else:
            assert rig.collector is not None
            resource.prlimit(rig.collector.pid, resource.RLIMIT_FSIZE,
                             (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        rig.note(f"space returned ({frozen} events were stored before the disk filled)")
        finish(rig, "collector's disk full", frozen_at=frozen)
    finally:
        rig.close()
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_corrupted_outbox_is_moved_aside_and_the_agent_keeps_working(rig: Rig) -> None:
    device = "pc-c"
    rig.start_collector(wait=True)
    rig.start_agent(device)
    wait_for(lambda: len(rig.stored().get(device, [])) >= 3, 30, 0.2, what="first events stored")
    rig.kill_agent(device)
    before = rig.count()[0]
    outbox = rig.agent_dir(device) / "outbox.db"
    with outbox.open("r+b") as f:
        f.write(os.urandom(4096))
    rig.note(f"agent SIGKILLed, its outbox overwritten with random bytes ({before.published} events published, "
             f"{before.left} waiting and lost with it)")
    rig.start_agent(device)

    def fault_seq() -> int | None:
        db = sqlite3.connect(rig.db_path, timeout=10)
        try:
            for seq, data in db.execute("SELECT seq, data FROM events WHERE device = ? AND type = 'fault'",
                                        (device,)):
                if json.loads(data).get("code") == "outbox_corrupt":
                    return int(seq)
        finally:
            db.close()
        return None

    first = wait_for(fault_seq, 30, 0.2, what="the outbox_corrupt fault stored")
    wait_for(lambda: max(rig.stored()[device]) > first + 3, 20, 0.2, what="new heartbeats after recovery")
    assert rig.agents[device].poll() is None, "the agent keeps working"
    assert list(outbox.parent.glob("outbox.db.corrupt-*")), "the damaged outbox is kept aside"
    facts = finish(rig, "corrupted agent outbox", first_seq={device: first}, lost_with_outbox=before.left)
    stored_before = [s for s in rig.stored()[device] if s < first]
    assert len(stored_before) == len(set(stored_before)) >= before.published
    assert facts["gaps"] >= 1, "the collector records the jump in seq as a gap (tamper evidence)"
