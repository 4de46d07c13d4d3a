"""Power: "on" at start (boot time, was the previous stop clean?), sleep and wake, crash loops.

Sleep is seen as a jump between two clocks: one that stops while the machine is suspended
(Linux CLOCK_MONOTONIC, Windows QueryUnbiasedInterruptTime) and one that keeps counting
(Linux CLOCK_BOOTTIME, Windows GetTickCount64 / time.monotonic). Without both, the wall clock
is compared with time.monotonic, which cannot tell a suspend from a clock being set; then only
jumps above ``FALLBACK_MIN_GAP`` count.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import protocol
from agent.probes import Probe

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

MIN_GAP = 20.0  # seconds of suspend before a sleep is reported
FALLBACK_MIN_GAP = 90.0
ALIVE_EVERY_S = 60.0  # how often "last seen alive" is marked (one system call: AliveMark)


class Clocks:
    """awake(): stops during suspend; elapsed(): keeps counting. ``exact`` False = wall-clock heuristic."""

    exact = False

    def awake(self) -> float:
        return time.monotonic()

    def elapsed(self) -> float:
        return time.time()


class LinuxClocks(Clocks):
    exact = True

    def awake(self) -> float:
        return time.clock_gettime(time.CLOCK_MONOTONIC)

    def elapsed(self) -> float:
        return time.clock_gettime(time.CLOCK_BOOTTIME)  # type: ignore[attr-defined]


class WindowsClocks(Clocks):
    exact = True

    def __init__(self, kernel32: Any = None) -> None:
        if kernel32 is None:
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        self.k32 = kernel32

    def awake(self) -> float:
        import ctypes

        t = ctypes.c_ulonglong(0)
        if not self.k32.QueryUnbiasedInterruptTime(ctypes.byref(t)):
            raise OSError("QueryUnbiasedInterruptTime failed")
        return t.value / 1e7  # 100 ns units, excluding time asleep

    def elapsed(self) -> float:
        return float(self.k32.GetTickCount64()) / 1000.0  # milliseconds, including time asleep


def default_clocks() -> Clocks:
    if sys.platform == "win32":
        return WindowsClocks()
    if hasattr(time, "CLOCK_BOOTTIME"):
        return LinuxClocks()
    return Clocks()


class SleepDetector:
    """Pure logic: feed (awake, elapsed) readings; returns seconds slept since the last reading."""

    def __init__(self, exact: bool) -> None:
        self.min_gap = MIN_GAP if exact else FALLBACK_MIN_GAP
        self.last: Optional[Tuple[float, float]] = None

    def feed(self, awake: float, elapsed: float) -> float:
        prev, self.last = self.last, (awake, elapsed)
        if prev is None:
            return 0.0
        gap = (elapsed - prev[1]) - (awake - prev[0])
        return gap if gap >= self.min_gap else 0.0


class AliveMark:
    """"Last seen alive" as the modification time of a file in the data folder. Marking it is one
    system call that the OS writes out within seconds; the SQLite commit it replaces cost about 1 ms
    of CPU each minute, a fifth of what the agent may spend (bench/results/agent_footprint.md)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def touch(self, wall: float) -> None:
        try:
            os.utime(self.path, (wall, wall))
        except FileNotFoundError:
            with open(self.path, "ab"):
                pass
            os.utime(self.path, (wall, wall))

    def read(self) -> Optional[float]:
        try:
            return os.stat(self.path).st_mtime
        except OSError:
            return None


def crash_loop(starts: List[List[Any]], now: float, window_s: float, limit: int) -> bool:
    """starts: [[epoch, clean], ...] newest last. True when ``limit`` unclean starts fall in the window."""
    return sum(1 for t, clean in starts if not clean and now - float(t) <= window_s) >= limit


def _local(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc).astimezone()


class PowerProbe(Probe):
    name = "power"
    period = "power_s"
    emits = ("power", "fault")
    fields = {"state": "on / off / sleep / wake", "boot_time": "time the OS started", "clean":
              "whether the previous agent stop was clean (false after a power cut, hard reset or kill)",
              "slept_s": "seconds asleep (sleep and wake)"}

    def __init__(self, clocks: Optional[Clocks] = None, boot_time: Optional[Callable[[], float]] = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.clocks = clocks or default_clocks()
        self.detector = SleepDetector(self.clocks.exact)
        self._boot_time = boot_time
        self.wall = wall
        self._alive_written = 0.0
        self.alive: Optional[AliveMark] = None

    def boot_time(self) -> float:
        if self._boot_time is not None:
            return self._boot_time()
        import psutil

        return float(psutil.boot_time())

    def setup(self, ctx: "Context") -> None:
        now = self.wall()
        clean = ctx.outbox.get_meta("running", "0") != "1"
        self.alive = AliveMark(os.path.join(ctx.cfg.data_dir, "alive"))
        # older agents kept "last_alive" in the outbox's meta table
        marks = [float(t) for t in (self.alive.read(), ctx.get_state("last_alive")) if t]
        last_alive = max(marks) if marks else None
        ctx.outbox.set_meta("running", "1")
        starts = [s for s in ctx.get_state("starts", []) if now - float(s[0]) <= ctx.cfg.crash_window_s]
        starts.append([now, clean])
        ctx.set_state("starts", starts[-20:])
        ctx.emit("power", {"state": "on", "boot_time": protocol.format_time(_local(self.boot_time())),
                           "clean": clean})
        if not clean:
            since = _local(float(last_alive)) if last_alive else None
            detail = "the previous run did not stop cleanly (power cut, hard reset or killed)"
            if since is not None:
                detail += "; last seen alive %s" % protocol.format_time(since)
            ctx.faults.raise_("unclean_shutdown", "warning", detail, since)
        if clean and last_alive and self.boot_time() < float(last_alive) - STOPPED_SLACK_S:
            agent_stopped(ctx, float(last_alive))
        if crash_loop(starts, now, ctx.cfg.crash_window_s, ctx.cfg.crash_starts):
            ctx.faults.raise_("agent_crash", "warning", "the agent restarted %d times without a clean stop "
                              "within %d minutes" % (ctx.cfg.crash_starts, ctx.cfg.crash_window_s // 60))
        self.run(ctx)

    def run(self, ctx: "Context") -> None:
        wall = self.wall()
        slept = self.detector.feed(self.clocks.awake(), self.clocks.elapsed())
        if slept:
            went = _local(wall - slept)
            usage = getattr(ctx, "usage", None)
            if usage is not None:
                usage.end_session(ctx, went)
            ctx.emit("power", {"state": "sleep", "slept_s": int(slept)}, went)
            ctx.emit("power", {"state": "wake", "slept_s": int(slept)}, _local(wall))
        if wall - self._alive_written >= ALIVE_EVERY_S or wall < self._alive_written:
            if self.alive is not None:
                self.alive.touch(wall)  # when the power went, roughly, if it goes
            self._alive_written = wall
        for code in ("unclean_shutdown", "agent_crash"):
            ctx.faults.observe(code, False, detail="the agent has run normally since")


STOPPED_SLACK_S = 120.0


def agent_stopped(ctx: "Context", last_alive: float) -> None:
    """The agent stopped cleanly but the OS kept running (it has not booted since): someone stopped
    the service. Reported as an ``info`` fault over the unmonitored time (trust, docs/security.md):
    info never excuses a lesson, and the collector shows those lessons as "data missing"."""
    since = _local(last_alive)
    ctx.emit("fault", {"code": "agent_stopped", "severity": "info", "state": "raised",
                       "detail": "the agent was stopped while the PC kept running (last seen %s)"
                       % protocol.format_time(since)}, since)
    ctx.emit("fault", {"code": "agent_stopped", "severity": "info", "state": "cleared",
                       "detail": "the agent runs again"})


def stop_event(ctx: "Context") -> None:
    ctx.emit("power", {"state": "off"})


