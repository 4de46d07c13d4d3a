"""A small time-bounded cache for expensive, slowly changing figures of a page (per process).

The overview refreshes every 10 s; its usage tiles and the usage pages' trend chart may be a
few seconds old. Device states, faults and tables are never cached by time. One thread
computes a missing or expired value at a time; meanwhile others get the previous value when
there is one (so a burst of requests never computes the same thing many times over).
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

_lock = threading.Lock()
_store: dict[Hashable, tuple[float, Any]] = {}
_computing: dict[Hashable, threading.Lock] = {}
MAX_ENTRIES = 2000


def cached(key: Hashable, ttl: float, compute: Callable[[], Any]) -> Any:
    """The value for ``key`` if computed within ``ttl`` seconds, else ``compute()`` (stored)."""
    with _lock:
        hit = _store.get(key)
        busy = _computing.setdefault(key, threading.Lock())
    if hit is not None and time.monotonic() - hit[0] < ttl:
        return hit[1]
    if hit is not None and not busy.acquire(blocking=False):
        return hit[1]  # someone is refreshing it: the previous value will do meanwhile
    if hit is None:
        busy.acquire()
    try:
        with _lock:
            again = _store.get(key)
        if again is not None and time.monotonic() - again[0] < ttl:
            return again[1]  # computed by another thread while this one waited
        value = compute()
        with _lock:
            if len(_store) >= MAX_ENTRIES:
                _store.clear()
                _computing.clear()
            _store[key] = (time.monotonic(), value)
        return value
    finally:
        busy.release()


def clear() -> None:
    with _lock:
        _store.clear()
        _computing.clear()
