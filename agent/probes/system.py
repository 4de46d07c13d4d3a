"""System load for the heartbeat and the fault checks: CPU %, memory, system disk, uptime.

psutil everywhere, except the three figures read every minute on Linux: there /proc/stat and
/proc/meminfo stay open and are re-read with pread (no path lookup, no parsing past the lines
needed), the same sums psutil makes. On an idle PC the first system calls after a wake-up cost
several times what they cost warm (bench/results/agent_footprint.md), so the heartbeat and the
fault check, which run on the same wake-up, share one reading of memory and disk.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import psutil

FIELDS = {"cpu_pct": "%", "mem_pct": "%", "disk_pct": "% of the system drive", "uptime_s": "s"}
SHARED_S = 1.0  # a memory or disk reading this fresh is used again (heartbeat and faults, one wake-up)


class Memory(NamedTuple):
    percent: float  # used, as psutil counts it: (total - available) / total
    available: int  # bytes


class Disk(NamedTuple):
    percent: float  # used, of what the user may use (psutil's disk_usage)
    free: int  # bytes the user may still write


def system_drive() -> str:
    if sys.platform == "win32":
        return os.environ.get("SystemDrive", "C:") + "\\"
    return "/"


def uptime() -> float:
    """Seconds since boot, suspend included (Linux: one clock read instead of parsing /proc/stat)."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time() - psutil.boot_time()


class Source:
    """psutil (Windows and everywhere else)."""

    def cpu_pct(self) -> float:
        return float(psutil.cpu_percent(interval=None))

    def memory(self) -> Memory:
        m = psutil.virtual_memory()
        return Memory(float(m.percent), int(m.available))

    def disk(self, path: str) -> Disk:
        u = psutil.disk_usage(path)
        return Disk(float(u.percent), int(u.free))


class ProcSource(Source):
    """Linux: /proc/stat's and /proc/meminfo's first lines by pread on descriptors kept open."""

    def __init__(self, proc: str = "/proc") -> None:
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
        self._stat = os.open(os.path.join(proc, "stat"), flags)
        self._meminfo = os.open(os.path.join(proc, "meminfo"), flags)
        self._last: Optional[List[int]] = None

    def cpu_pct(self) -> float:
        """Busy share of all CPU time since the last call (psutil's cpu_percent: busy is everything but
        idle and iowait; guest time is already in user and nice)."""
        line = os.pread(self._stat, 256, 0).split(b"\n", 1)[0].split()
        now = [int(x) for x in line[1:9]]  # user nice system idle iowait irq softirq steal
        last, self._last = self._last, now
        if last is None:
            return 0.0
        total = sum(now) - sum(last)
        idle = (now[3] + now[4]) - (last[3] + last[4])
        return max(0.0, min(100.0, 100.0 * (total - idle) / total)) if total > 0 else 0.0

    def memory(self) -> Memory:
        fields: Dict[bytes, int] = {}
        for line in os.pread(self._meminfo, 512, 0).split(b"\n")[:5]:
            key, _, rest = line.partition(b":")
            if rest:
                fields[key] = int(rest.split()[0]) * 1024
        total, avail = fields.get(b"MemTotal"), fields.get(b"MemAvailable")
        if not total or avail is None:  # an old kernel without MemAvailable: psutil estimates it
            return super().memory()
        return Memory(round(100.0 * (total - avail) / total, 1), avail)

    def disk(self, path: str) -> Disk:
        st = os.statvfs(path)
        avail = st.f_bavail * st.f_frsize
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return Disk(round(100.0 * used / (used + avail), 1) if used + avail else 0.0, avail)


def default_source() -> Source:
    if sys.platform.startswith("linux"):
        try:
            return ProcSource()
        except OSError:
            pass
    return Source()


class System:
    """What the probes read, memory and disk shared for SHARED_S between callers."""

    def __init__(self, source: Optional[Source] = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source or default_source()
        self.clock = clock
        self._memory: Optional[tuple] = None
        self._disk: Optional[tuple] = None

    def memory(self) -> Memory:
        now = self.clock()
        if self._memory is None or now - self._memory[0] > SHARED_S:
            self._memory = (now, self.source.memory())
        return self._memory[1]

    def disk(self) -> Disk:
        now = self.clock()
        if self._disk is None or now - self._disk[0] > SHARED_S:
            self._disk = (now, self.source.disk(system_drive()))
        return self._disk[1]

    def read(self) -> Dict[str, Any]:
        """The heartbeat's system fields."""
        return {"cpu_pct": round(self.source.cpu_pct(), 1), "mem_pct": round(self.memory().percent, 1),
                "disk_pct": round(self.disk().percent, 1), "uptime_s": int(uptime())}


_shared: Optional[System] = None


def shared() -> System:
    """The one System of this process (the heartbeat and the fault probe share its readings)."""
    global _shared
    if _shared is None:
        _shared = System()
    return _shared


def read() -> Dict[str, Any]:
    return shared().read()


def boot_time() -> float:
    return float(psutil.boot_time())
