"""The alert engine: evaluation and delivery threads, woken by every committed batch.

``gate`` decides whether this process evaluates and sends (a district runs several collectors
on one database and gives the job to the holder of a lease); ``clock`` is injectable.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from alerts import config
from alerts.evaluate import EventScanner, PassResult, default_weekly, evaluate_school
from alerts.notify import Dispatcher, Sender
from alerts.schedule import DbSchedule, Schedule
from collector.db import Database

log = logging.getLogger(__name__)


class AlertEngine:
    def __init__(self, db: Database, schedule: Schedule | None = None, sender: Sender | None = None,
                 clock: Callable[[], float] = time.time, base_url: str | None = None,
                 interval_s: float = 2.0, min_gap_s: float = 0.1, rate_window_s: float = 60.0,
                 gate: Callable[[], bool] = lambda: True,
                 weekly: Callable[..., dict[str, Any]] | None = default_weekly) -> None:
        self.db = db
        self.weekly = weekly
        self.schedule = schedule or DbSchedule(db)
        self.clock = clock
        self.interval_s = interval_s
        self.min_gap_s = min_gap_s
        self.gate = gate
        self.scanner = EventScanner()
        self.dispatcher = Dispatcher(db, sender, clock, base_url, rate_window_s, gate)
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        self.passes = 0

    def on_batch(self, prepared: Any, result: Any) -> None:
        """Collector listener: never blocks ingest, only notes the schools and wakes the engine."""
        schools = {getattr(p, "school", None) for p in prepared}
        with self._lock:
            self._dirty.update(s for s in schools if s)
        self.wake.set()

    def run_once(self, schools: set[str] | None = None) -> PassResult:
        """One evaluation pass (over ``schools``, plus those with new events; None: every school)."""
        now = self.clock()
        total = PassResult()
        events = self.scanner.scan(self.db, now)
        todo = set(config.schools(self.db)) if schools is None else set(schools)
        for school in sorted(todo | set(events)):
            res = evaluate_school(self.db, school, now, self.schedule, events.get(school, []), self.weekly)
            total.fired += res.fired
            total.resolved += res.resolved
            total.notices += res.notices
        self.passes += 1
        if total.notices:
            self.dispatcher.wake.set()
        return total

    def _run(self) -> None:
        """A pass over the schools that just sent data when woken; over every school each interval_s
        (the clock-based rules, and data another collector stored)."""
        last_full = 0.0
        while not self._stop.is_set():
            self.wake.wait(self.interval_s)
            self.wake.clear()
            if self._stop.is_set():
                break
            full = time.monotonic() - last_full >= self.interval_s
            with self._lock:
                dirty, self._dirty = self._dirty, set()
            try:
                if self.gate():
                    self.run_once(None if full else dirty)
                    if full:
                        last_full = time.monotonic()
            except Exception:
                log.exception("alert evaluation pass failed")
            self._stop.wait(self.min_gap_s)

    def start(self, poll_s: float = 0.2) -> None:
        self._thread = threading.Thread(target=self._run, name="bbt-alerts", daemon=True)
        self._thread.start()
        self.dispatcher.start(poll_s)

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread:
            self._thread.join(15)
        self.dispatcher.stop()


def start_for_store(db: Any, base_url: str, subscribe: Callable[[Callable[..., None]], None],
                    **options: Any) -> tuple[AlertEngine, Callable[[], None]]:
    """Start the engine on ``db``, woken by every batch ``subscribe`` delivers (e.g. a collector's
    ``add_listener``); several collectors on one store: a lease lets one evaluate and send.
    Returns the engine and its stopper."""
    from collector.lease import Lease

    lease = Lease(db, "alerts")
    engine = AlertEngine(db, base_url=base_url, gate=lease.held, **options)
    subscribe(engine.on_batch)
    engine.start()

    def stop() -> None:
        engine.stop()
        lease.release()

    return engine, stop
