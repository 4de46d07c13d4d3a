"""apply_batch on both backends: idempotent, few round trips, and robust to reordered delivery
(several collectors on a shared subscription store a device's batches in any order)."""
from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import protocol
from collector.devices.ingest import Incoming, Prepared, prepare
from collector.devices.registry import ingest_stats
from collector.intake import store

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def msg(device: str, seqs: list[int], etype: str = "heartbeat", data: Any = None, school: str = "s1") -> Prepared:
    evs = [protocol.make_event(f"{device}-{s}", s, etype, T0 + timedelta(seconds=s),
                               data or {"in_use": s % 2 == 0, "idle_s": 1, "cpu_pct": 1.0, "mem_pct": 1.0,
                                        "disk_pct": 1.0, "uptime_s": s})
           for s in seqs]
    return prepare(Incoming(protocol.events_topic(school, device), protocol.dumps(evs), time.time(), qos=1))


def fault(device: str, seq: int, state: str) -> Prepared:
    return msg(device, [seq], "fault", {"code": "overheat", "severity": "warning", "state": state, "detail": "x"})


def test_idempotent_and_counted(db) -> None:  # type: ignore[no-untyped-def]
    batch = [msg("pc1", [0, 1, 2]), msg("pc2", [0, 1]), msg("pc1", [2, 3])]  # pc1 seq 2 twice in one batch
    r = store.apply_batch(db, batch)
    assert (r.stored, r.duplicates, r.gaps) == (6, 1, 0)
    r = store.apply_batch(db, batch)
    assert (r.stored, r.duplicates) == (0, 7)
    assert ingest_stats(db) == {"stored": 6, "duplicates": 8, "rejected": 0, "gaps": 0}
    assert db.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == 6
    dev = db.query("SELECT last_seq, in_use, last_heartbeat_t FROM devices WHERE device = 'pc1'")[0]
    assert dev["last_seq"] == 3 and dev["in_use"] == 0
    assert dev["last_heartbeat_t"] == (T0 + timedelta(seconds=3)).timestamp()


def test_of_two_copies_of_one_event_in_a_batch_the_first_is_stored(db) -> None:  # type: ignore[no-untyped-def]
    first = msg("pc1", [5], data={"in_use": True, "idle_s": 9})
    second = msg("pc1", [5], data={"in_use": False, "idle_s": 1})  # the same id, other data
    others = [msg(f"pc{i}", [0]) for i in (0, 2, 3)]  # sorted before and after pc1
    r = store.apply_batch(db, [others[2], first, others[0], second, others[1]])
    assert (r.stored, r.duplicates) == (4, 1)
    assert [row["data"] for row in db.query("SELECT data FROM events WHERE device = 'pc1'")] == \
        ['{"in_use":true,"idle_s":9}']
    assert db.query("SELECT in_use FROM devices WHERE device = 'pc1'")[0]["in_use"] == 1


def test_reordered_batches_leave_no_gap_but_a_real_loss_does(db) -> None:  # type: ignore[no-untyped-def]
    store.apply_batch(db, [msg("pc1", [0, 1])])
    r1 = store.apply_batch(db, [msg("pc1", [4, 5])])  # 2-3 come later, from the other collector
    assert r1.gaps == 1
    r2 = store.apply_batch(db, [msg("pc1", [2, 3])])
    assert r2.gaps == -1  # filled at once: a reordering, not a gap
    assert db.query("SELECT COUNT(*) AS n FROM gaps")[0]["n"] == 0
    store.apply_batch(db, [msg("pc1", [8])])  # 6-7 really missing
    assert ingest_stats(db)["gaps"] == 1
    gaps = db.query("SELECT seq_from, seq_to, closed FROM gaps")
    assert gaps == [{"seq_from": 6, "seq_to": 7, "closed": None}]
    db.execute("UPDATE gaps SET opened = opened - 3600")  # the outbox replays them an hour later
    store.apply_batch(db, [msg("pc1", [6, 7])])
    gaps = db.query("SELECT seq_from, seq_to, filled, closed FROM gaps")
    assert gaps[0]["filled"] == 2 and gaps[0]["closed"] is not None
    assert ingest_stats(db)["gaps"] == 1
    assert db.query("SELECT last_seq FROM devices")[0]["last_seq"] == 8


def test_fault_clear_arriving_before_its_raise(db) -> None:  # type: ignore[no-untyped-def]
    store.apply_batch(db, [fault("pc1", 11, "cleared")])
    store.apply_batch(db, [fault("pc1", 10, "raised")])
    assert db.query("SELECT COUNT(*) AS n FROM faults WHERE cleared_t IS NULL")[0]["n"] == 0
    store.apply_batch(db, [fault("pc1", 13, "raised")])
    store.apply_batch(db, [fault("pc1", 12, "cleared")])  # an older clear must not close the newer raise
    open_ = db.query("SELECT opened_t FROM faults WHERE cleared_t IS NULL")
    assert open_ == [{"opened_t": (T0 + timedelta(seconds=13)).timestamp()}]


def test_counter_shards_add_up(db) -> None:  # type: ignore[no-untyped-def]
    store.apply_batch(db, [msg("pc1", [0, 1])], counter_shard="col-a")
    store.apply_batch(db, [msg("pc1", [1, 2])], counter_shard="col-b")
    store.apply_batch(db, [msg("pc2", [0])])
    assert ingest_stats(db) == {"stored": 4, "duplicates": 1, "rejected": 0, "gaps": 0}
    assert db.query("SELECT value FROM counters WHERE name = 'stored'")[0]["value"] == 1


def test_concurrent_writers_interleaving_devices(db) -> None:  # type: ignore[no-untyped-def]
    """Two writers (like two collectors) store shuffled batches of the same devices: exactly once, no deadlock."""
    devices = [f"pc{i:02d}" for i in range(12)]
    batches = [[msg(d, list(range(k * 5, k * 5 + 5))) for d in random.Random(k).sample(devices, len(devices))]
               for k in range(16)]
    batches += batches[:4]  # redeliveries
    random.Random(1).shuffle(batches)
    errors: list[BaseException] = []

    def writer(mine: list[list[Prepared]], shard: str) -> None:
        try:
            for b in mine:
                store.apply_batch(db, b, counter_shard=shard)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(batches[i::2], f"w{i}")) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert db.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == 12 * 80
    stats = ingest_stats(db)
    assert stats["stored"] == 960 and stats["duplicates"] == 4 * 60
    assert {r["last_seq"] for r in db.query("SELECT last_seq FROM devices")} == {79}
    assert db.query("SELECT COUNT(*) AS n FROM gaps WHERE closed IS NULL")[0]["n"] == 0
