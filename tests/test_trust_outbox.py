"""A damaged agent outbox is moved aside, what still reads is salvaged, and the agent keeps working."""
from __future__ import annotations

import os
from pathlib import Path

from agent.outbox import Outbox


def make(path: Path, n: int) -> None:
    box = Outbox(str(path))
    for i in range(n):
        box.add("heartbeat", {"in_use": False, "i": i, "pad": "x" * 200})
    box.close()


def faults(box: Outbox) -> list[dict]:
    return [ev for _, ev in box.peek() if ev["type"] == "fault"]


def test_garbage_outbox_is_moved_aside_and_a_fresh_one_continues_seq(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    make(path, 20)
    with path.open("r+b") as f:
        f.write(os.urandom(4096))  # the header and first page destroyed
    box = Outbox(str(path))
    try:
        assert box.recovered and "moved aside" in box.recovered
        aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
        assert aside, "the damaged file is kept for inspection"
        raised, cleared = faults(box)
        assert raised["data"]["code"] == "outbox_corrupt" and raised["data"]["state"] == "raised"
        assert cleared["data"]["state"] == "cleared"
        assert raised["seq"] > 20, "seq continues above anything used before: the collector sees a gap"
        ev = box.add("heartbeat", {"in_use": True})
        assert ev["seq"] == cleared["seq"] + 1
        assert box.get_meta("running") == "1", "the next start reports an unclean shutdown"
    finally:
        box.close()
    again = Outbox(str(path))
    assert again.recovered is None and len(again) == 3
    again.close()


def test_damaged_pages_salvage_what_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    make(path, 400)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 8192)  # two pages in the middle
    box = Outbox(str(path))
    try:
        assert box.recovered is not None
        seqs = [ev["seq"] for _, ev in box.peek(limit=500) if ev["type"] == "heartbeat"]
        assert seqs and len(seqs) < 400, "some events salvaged, the damaged ones lost"
        assert len(set(seqs)) == len(seqs)
        raised = faults(box)[0]
        assert raised["data"]["detail"]["salvaged"] == len(seqs)
        assert raised["seq"] >= 400, "the salvaged counter is kept"
    finally:
        box.close()


def test_seq_stays_unique_when_two_agents_share_an_outbox(tmp_path: Path) -> None:
    """The next seq is kept in memory; a second agent on the same data folder (a service and a copy
    started by hand) takes seqs too, and neither loses an event or repeats a seq."""
    a, b = Outbox(str(tmp_path / "outbox.db")), Outbox(str(tmp_path / "outbox.db"))
    try:
        for i in range(5):
            a.add("heartbeat", {"i": i})
            b.add("heartbeat", {"i": i})
        seqs = [s for s, _ in a.peek()]
        assert seqs == list(range(10))
    finally:
        a.close()
        b.close()
    again = Outbox(str(tmp_path / "outbox.db"))
    try:
        assert again.add("power", {"state": "on"})["seq"] == 10  # and it survives a restart
    finally:
        again.close()


def test_the_publisher_sends_events_as_stored_which_is_the_wire_encoding(tmp_path: Path) -> None:
    import protocol

    box = Outbox(str(tmp_path / "outbox.db"))
    try:
        box.add("software", {"action": "detected", "name": "植物大战僵尸.exe", "exe": "", "rule": "植物*"})
        box.add("heartbeat", {"in_use": True})
        batch = box.next_batch()
        assert [raw for _, raw in batch] == [protocol.dumps(ev) for _, ev in box.peek()]
        assert box.pending == 2
        box.remove([batch[0][0], 999])  # one delivered, one never there
        assert box.pending == 1 == len(box)
        box.remove([s for s, _ in batch])
        assert box.pending == 0 == len(box)
    finally:
        box.close()


def rows_in_file(path: Path) -> list[int]:
    import sqlite3

    db = sqlite3.connect(str(path))
    try:
        return [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        db.close()


def test_a_small_delivered_batch_is_deleted_with_the_next_event(tmp_path: Path) -> None:
    """One durable commit per heartbeat instead of two: what was acknowledged is deleted in the next
    event's transaction. Until then it is neither pending nor sent again; after a crash it is (the
    collector stores a repeated id once); a clean close deletes it; a backlog is deleted at once."""
    path = tmp_path / "outbox.db"
    box = Outbox(str(path))
    try:
        first = box.add("heartbeat", {"in_use": True})
        box.remove([s for s, _ in box.next_batch()], defer=True)
        assert box.pending == 0 == len(box) and box.next_batch() == []
        assert rows_in_file(path) == [first["seq"]]  # still there: no transaction of its own
        second = box.add("heartbeat", {"in_use": False})
        assert rows_in_file(path) == [second["seq"]]  # gone with the next event's commit
        box.remove([s for s, _ in box.next_batch()], defer=True)
        crashed = Outbox(str(path))  # what a restart after a power cut finds: sent again
        assert [ev["id"] for _, ev in crashed.peek()] == [second["id"]]
        crashed._db.close()
    finally:
        box.close()
    assert rows_in_file(path) == []  # a clean stop deleted it
    box = Outbox(str(path))
    try:
        for i in range(30):
            box.add("heartbeat", {"in_use": False, "i": i})
        box.remove([s for s, _ in box.next_batch()], defer=True)  # a backlog's batch: deleted now
        assert rows_in_file(path) == [] and box.pending == 0
    finally:
        box.close()
