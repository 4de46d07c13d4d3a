"""One thread that runs every periodic probe on a shared tick.

The program scan (every 12 s), USB, power and usage checks are each a few hundred microseconds of
work, and waking a thread costs about as much. APScheduler spends another ~0.3 ms per job run on
its own bookkeeping (time zones, triggers, events, a hand-off to its worker thread), which at six
jobs a minute was most of the agent's CPU (bench/results/agent_footprint.md). So the frequent
probes share one thread and one wake-up: periods are rounded up to whole ticks, so probes that
are due together run together (the heartbeat and the fault checks ride on every fifth tick, the
hourly drift check and the daily inventory on theirs). The tick is 12 s: the program scan must
report a denied program within 15 s, the in-use check run every 15-30 s (every second tick) and
the heartbeat every 60 s (every fifth); each wake-up costs ~0.1-0.2 ms of CPU on a virtual machine
before any work, so five a minute rather than six. APScheduler keeps what happens at a clock
time: the end-of-day shutdown.

A job that raises is logged and skipped (the callers pass :func:`agent.probes.run_probe`
wrappers); one slow run delays the others but never makes them run twice to catch up.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Dict, List, Optional

log = logging.getLogger(__name__)


class _Job:
    __slots__ = ("name", "fn", "ticks", "due")

    def __init__(self, name: str, fn: Callable[[], None], ticks: int, due: int) -> None:
        self.name, self.fn, self.ticks, self.due = name, fn, ticks, due


class Ticker:
    """Runs jobs every N ticks of ``tick_s`` seconds, all from one thread."""

    def __init__(self, tick_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be positive")
        self.tick_s = tick_s
        self.clock = clock
        self._jobs: Dict[str, _Job] = {}
        self._soon: List[str] = []  # run at the next wake-up, out of turn (run_soon)
        self._lock = threading.Lock()
        self._bell = threading.Lock()  # held while nobody rings: see _ring and _sleep
        self._bell.acquire()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._t0 = 0.0
        self._tick = 0

    def ticks_for(self, period_s: float) -> int:
        """A period in whole ticks, rounded up (a 30 s period on a 12 s tick runs every 36 s)."""
        return max(1, int(math.ceil(period_s / self.tick_s - 1e-9)))

    def add(self, name: str, fn: Callable[[], None], period_s: float) -> None:
        ticks = self.ticks_for(period_s)
        with self._lock:
            self._jobs[name] = _Job(name, fn, ticks, self._tick + ticks)

    def set_period(self, name: str, period_s: float) -> None:
        ticks = self.ticks_for(period_s)
        with self._lock:
            job = self._jobs[name]
            if ticks != job.ticks:
                job.ticks, job.due = ticks, min(job.due, self._tick + ticks)

    def has(self, name: str) -> bool:
        return name in self._jobs

    def period(self, name: str) -> float:
        return self._jobs[name].ticks * self.tick_s

    def run_soon(self, name: str) -> None:
        """Run a job at once (in the ticker's thread), besides its regular turns."""
        with self._lock:
            if name in self._jobs and name not in self._soon:
                self._soon.append(name)
        self._ring()

    def _ring(self) -> None:
        try:
            self._bell.release()
        except RuntimeError:
            pass  # rung already, not yet heard

    def _sleep(self, timeout: float) -> bool:
        """Wait for the bell or the timeout; True when rung. A bare lock, not an Event: an Event's
        wait (a Condition, a new lock per wait) cost ~50 us more per wake-up on this VM, five times a
        minute (bench/results/agent_footprint.md)."""
        return self._bell.acquire(True, timeout)

    def due_jobs(self, tick: int) -> List[_Job]:
        """The jobs due at ``tick``, in the order they were added; advances their next turn."""
        with self._lock:
            due = [j for j in self._jobs.values() if j.due <= tick]
            for j in due:
                j.due = tick + j.ticks  # a late tick is not made up for: no bursts after a stall
            return due

    def _take_soon(self) -> List[_Job]:
        with self._lock:
            names, self._soon = self._soon, []
            return [self._jobs[n] for n in names if n in self._jobs]

    def _run(self, jobs: List[_Job]) -> None:
        for job in jobs:
            if self._stop.is_set():
                return
            try:
                job.fn()
            except Exception:  # a job must never stop the ticker
                log.exception("periodic job %s failed", job.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            next_at = self._t0 + (self._tick + 1) * self.tick_s
            if self._sleep(max(0.0, next_at - self.clock())):
                self._run(self._take_soon())
                continue
            elapsed = int((self.clock() - self._t0) / self.tick_s)
            self._tick = max(self._tick + 1, elapsed)
            self._run(self._take_soon() + self.due_jobs(self._tick))

    def start(self) -> None:
        self._t0 = self.clock()
        self._thread = threading.Thread(target=self._loop, name="bbt-agent-ticker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._ring()
        if self._thread is not None:
            self._thread.join(timeout)
