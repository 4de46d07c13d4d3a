"""When each periodic probe runs: deadlines with slack, so that jobs share wake-ups.

On a classroom PC that sits idle for hours, what the agent costs is mostly how often it wakes:
on a virtual machine a wake-up after an idle pause costs ~0.1 ms before any work, and the first
system calls after it several times what they cost warm (bench/results/agent_footprint.md). So
every job has a period and runs up to a quarter of it early when the loop is awake anyway and
would otherwise have to wake for that job alone. With the default periods (in-use check, power
and USB every 30 s; heartbeat and faults every 60 s) the agent wakes twice a minute and runs
everything on those two wake-ups. Where the program scan polls every 12 s (no process events:
Windows, a PC where the agent is not root, or while programs keep starting), its wake-ups set
the pace and the others ride along: the in-use check every 24 s, the heartbeat every 60 s.

The ticker has no thread: the agent's loop (:mod:`agent.loop`) sleeps until :meth:`Ticker.next_due`
and calls :meth:`Ticker.run_due`. A job that raises is logged and skipped; one slow run delays the
others but never makes them run twice to catch up.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from agent.loop import Source

log = logging.getLogger(__name__)

SLACK = 0.25  # a job may run this fraction of its period early, to spare a wake-up of its own
LATE_S = 1.0  # ... but not when a planned wake-up comes at most this long after its deadline (wake-ups
# come a few ms late, so a 12 s scan drifts past a 60 s deadline: that must not make the heartbeat 48 s)


class _Job:
    __slots__ = ("name", "fn", "period", "next", "wakes", "hold")

    def __init__(self, name: str, fn: Callable[[], None], period: float, next_at: float, wakes: bool) -> None:
        self.name, self.fn, self.period, self.next, self.wakes = name, fn, period, next_at, wakes
        self.hold = False  # asked for at a time (run_in): not before it


class Ticker(Source):
    """Jobs every ``period`` seconds (each may run up to SLACK of it early to share a wake-up).

    A job added with ``wakes=False`` does not wake the loop: it runs when the loop is awake anyway
    and it is due (see :class:`OsEvents`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 on_soon: Callable[[], None] = lambda: None) -> None:
        self.clock = clock
        self.on_soon = on_soon  # wakes the loop when another thread asks for a job (run_soon)
        self._jobs: Dict[str, _Job] = {}
        self._soon: List[str] = []
        self._lock = threading.Lock()

    def add(self, name: str, fn: Callable[[], None], period_s: float, wakes: bool = True) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be positive (%s)" % name)
        with self._lock:
            self._jobs[name] = _Job(name, fn, float(period_s), self.clock() + period_s, wakes)

    def set_wakes(self, name: str, wakes: bool) -> None:
        job = self._jobs.get(name)
        if job is not None:
            job.wakes = wakes

    def wakes(self, name: str) -> bool:
        """Whether the job wakes the loop on its own (an unknown job: as if it did)."""
        job = self._jobs.get(name)
        return job is None or job.wakes

    def set_period(self, name: str, period_s: float) -> None:
        """A new period (the policy's heartbeat_s): the next run comes within it."""
        with self._lock:
            job = self._jobs[name]
            if period_s != job.period:
                job.next = min(job.next, job.next - job.period + period_s)
                job.period = float(period_s)

    def clear(self) -> None:
        """No more jobs (the agent is stopping)."""
        with self._lock:
            self._jobs.clear()
            self._soon = []

    def has(self, name: str) -> bool:
        return name in self._jobs

    def period(self, name: str) -> float:
        return self._jobs[name].period

    def run_soon(self, name: str) -> None:
        """Run a job at the loop's next wake-up (which this causes), besides its regular turns."""
        with self._lock:
            if name in self._jobs and name not in self._soon:
                self._soon.append(name)
        self.on_soon()

    def next_due(self) -> Optional[float]:
        """When the loop must wake next (clock time), None when there is nothing to run."""
        with self._lock:
            if self._soon:
                return self.clock()
            return min((j.next for j in self._jobs.values() if j.wakes), default=None)

    def due_jobs(self, now: float) -> List[_Job]:
        """The jobs to run at ``now``, in the order they were added: those asked for and those due,
        and a job due within its slack when the next planned wake-up would come after its deadline
        (it would need a wake-up of its own). Each one's next turn is one period from now (a stall
        is not made up for). Written for the common wake-up, where nothing is due early: one pass."""
        with self._lock:
            soon, self._soon = self._soon, []
            chosen: List[_Job] = []
            early: List[_Job] = []
            wake = float("inf")  # the next planned wake-up, without the jobs that may run early
            for j in self._jobs.values():
                if j.next <= now or j.name in soon:
                    chosen.append(j)
                    if j.wakes:
                        wake = min(wake, now + j.period)
                elif j.next - now <= SLACK * j.period and not j.hold:
                    early.append(j)
                elif j.wakes:
                    wake = min(wake, j.next)
            while early:
                more = [j for j in early if j.next + min(LATE_S, SLACK * j.period) < wake]
                if not more:
                    break
                early = [j for j in early if j not in more]
                chosen += more
                wake = min([wake] + [now + j.period for j in more if j.wakes])
            if len(chosen) > 1:
                order = list(self._jobs.values())
                chosen.sort(key=order.index)
            for j in chosen:
                j.next = now + j.period
                j.hold = False
            return chosen

    def run_in(self, name: str, delay_s: float) -> None:
        """Run a job once ``delay_s`` from now, waking the loop for it (an OS event asks for it a
        little later); after that run it wakes as :meth:`set_wakes` says."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None:
                job.next = min(job.next, self.clock() + delay_s)
                job.wakes = job.hold = True

    def run_now(self, name: str) -> None:
        """Run a job at once (an OS event asks for it); its next turn is a period from now."""
        with self._lock:
            job = self._jobs[name]
            job.next = self.clock() + job.period
        _run(job)

    def run_due(self, now: Optional[float] = None) -> List[str]:
        """Run what is due; returns the names run."""
        jobs = self.due_jobs(self.clock() if now is None else now)
        for job in jobs:
            _run(job)
        return [j.name for j in jobs]

    # -- as the loop's Source ------------------------------------------------------------
    def poll(self) -> Tuple[Any, Any, Optional[float]]:
        return None, None, self.next_due()

    def on_time(self, now: float) -> None:
        self.run_due(now)


def _run(job: _Job) -> None:
    try:
        job.fn()
    except Exception:  # a job must never stop the loop
        log.exception("periodic job %s failed", job.name)


class OsEvents(Source):
    """A job the OS can wake (the program scan, from the kernel's process events).

    While the PC is quiet the loop waits on the job's socket and the job does not wake it on its
    own; when the socket turns readable the job runs at once. While runs keep finding new work
    (``busy()``: programs keep starting), the job runs on its period instead, so a busy PC costs
    one wake-up a period however many programs start; the first run that finds nothing goes back
    to waiting on the socket. When the OS stops telling (``sock()`` is None), the job polls."""

    def __init__(self, ticker: Ticker, name: str, sock: Callable[[], Any], busy: Callable[[], bool],
                 wanted: Callable[[], bool] = lambda: True, settle_s: float = 0.0) -> None:
        self.ticker, self.name, self.sock, self.busy = ticker, name, sock, busy
        self.wanted, self.settle_s = wanted, settle_s
        self._sock = sock()  # asked again after each run (a run may give up on the events)

    def after_run(self) -> None:
        """Call after each run of the job: poll while busy, wait on the socket when not."""
        self._sock = self.sock()
        self.ticker.set_wakes(self.name, bool(self.busy()) or self._sock is None)

    def poll(self) -> Tuple[Any, Any, Optional[float]]:
        return None if self.ticker.wakes(self.name) else self._sock, None, None

    def on_read(self) -> None:
        if not self.wanted():
            return
        if self.settle_s > 0:
            self.ticker.run_in(self.name, self.settle_s)  # (the socket is not watched until that run)
        else:
            self.ticker.run_now(self.name)
