"""Raise a fault once, clear it once: a fault must stay good for ``hold_s`` before it clears.

Open faults are persisted, so a restart neither raises them again nor forgets to clear them.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any, Callable, Dict, Optional

Emit = Callable[..., Any]


class FaultTracker:
    def __init__(self, emit: Emit, load: Callable[[], Optional[str]], save: Callable[[str], None],
                 hold_s: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._emit = emit
        self._save = save
        self.hold_s = hold_s
        self._clock = clock
        try:
            self.open: Dict[str, Dict[str, Any]] = json.loads(load() or "{}")
        except ValueError:
            self.open = {}
        self._good_since: Dict[str, float] = {}

    def observe(self, code: str, bad: bool, severity: str = "warning", detail: str = "",
                ts: Optional[datetime] = None, **extra: Any) -> None:
        """Feed one observation. ``bad`` True raises (once); good for hold_s clears (once)."""
        now = self._clock()
        if bad:
            self._good_since.pop(code, None)
            if code not in self.open:
                self.open[code] = {"severity": severity, "detail": detail}
                self._save(json.dumps(self.open))
                self._emit("fault", dict(extra, code=code, severity=severity, state="raised", detail=detail), ts)
            return
        if code not in self.open:
            return
        since = self._good_since.setdefault(code, now)
        if now - since >= self.hold_s:
            self.clear(code, detail or "recovered", ts)

    def raise_(self, code: str, severity: str, detail: str, ts: Optional[datetime] = None, **extra: Any) -> None:
        self.observe(code, True, severity, detail, ts, **extra)

    def clear(self, code: str, detail: str = "recovered", ts: Optional[datetime] = None) -> None:
        old = self.open.pop(code, None)
        self._good_since.pop(code, None)
        if old is None:
            return
        self._save(json.dumps(self.open))
        self._emit("fault", {"code": code, "severity": old.get("severity", "warning"), "state": "cleared",
                             "detail": detail}, ts)

    def is_open(self, code: str) -> bool:
        return code in self.open
