"""A small time-bounded cache for expensive, slowly changing figures of a page (per process).

The overview refreshes every 10 s; its usage tiles and the usage pages' trend chart may be a
few seconds old. Device states, faults and tables are never cached.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

_lock = threading.Lock()
_store: dict[Hashable, tuple[float, Any]] = {}
MAX_ENTRIES = 2000


def cached(key: Hashable, ttl: float, compute: Callable[[], Any]) -> Any:
    """The value for ``key`` if computed within ``ttl`` seconds, else ``compute()`` (stored)."""
    now = time.monotonic()
    with _lock:
        hit = _store.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    value = compute()
    with _lock:
        if len(_store) >= MAX_ENTRIES:
            _store.clear()
        _store[key] = (now, value)
    return value


def clear() -> None:
    with _lock:
        _store.clear()
