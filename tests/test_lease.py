"""Leases: one holder at a time, renewal, expiry and take-over, release (both backends)."""
from __future__ import annotations

import threading

from collector import lease


def test_one_holder_renew_expire_takeover(db) -> None:  # type: ignore[no-untyped-def]
    assert lease.acquire(db, "alerts", "a", ttl=10, now=100)
    assert not lease.acquire(db, "alerts", "b", ttl=10, now=105)
    assert lease.acquire(db, "alerts", "a", ttl=10, now=108)  # renewal by the holder
    assert not lease.acquire(db, "alerts", "b", ttl=10, now=117)  # a renewed to 118
    info = lease.current(db, "alerts", now=117)
    assert info is not None and (info.holder, info.epoch, info.acquired) == ("a", 1, 100)
    assert lease.acquire(db, "alerts", "b", ttl=10, now=118.5)  # expired: b takes over
    info = lease.current(db, "alerts", now=119)
    assert info is not None and (info.holder, info.epoch) == ("b", 2)
    assert not lease.renew(db, "alerts", "a", ttl=10, now=119)  # a lost it
    assert lease.renew(db, "alerts", "b", ttl=10, now=119)
    assert lease.acquire(db, "reports", "a", ttl=10, now=119)  # leases are independent by name


def test_release_hands_over_at_once(db) -> None:  # type: ignore[no-untyped-def]
    assert lease.acquire(db, "reports", "a", ttl=60, now=100)
    assert not lease.release(db, "reports", "b")
    assert lease.release(db, "reports", "a")
    assert lease.current(db, "reports", now=100) is None
    assert lease.acquire(db, "reports", "b", ttl=60, now=100)


def test_concurrent_contenders_exactly_one_wins(db) -> None:  # type: ignore[no-untyped-def]
    wins: list[str] = []
    barrier = threading.Barrier(6)

    def contend(who: str) -> None:
        barrier.wait()
        if lease.acquire(db, "alerts", who, ttl=30):
            wins.append(who)

    threads = [threading.Thread(target=contend, args=(f"p{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    info = lease.current(db, "alerts")
    assert info is not None and info.holder == wins[0]


def test_lease_object_gates_a_job(db) -> None:  # type: ignore[no-untyped-def]
    first = lease.Lease(db, "alerts", holder="c1", ttl=30)
    second = lease.Lease(db, "alerts", holder="c2", ttl=30)
    assert first.held() and first.held()
    assert not second.held()
    first.release()
    assert second.held()
    assert not first.held()
