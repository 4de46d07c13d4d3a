"""Faults: system disk full, display/projector output missing, CPU too hot, memory exhausted,
clock off, outbox overflow. Each is raised once and cleared after ``fault_hold_s`` of recovery
(:class:`agent.faulttrack.FaultTracker`); power cuts and crash loops are raised by the power probe.
"""
from __future__ import annotations

import glob
import json
import os
import socket
import struct
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Tuple

import psutil

from agent.probes import Probe, run_probe, system

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

NTP_EPOCH = 2208988800  # seconds from 1900-01-01 to 1970-01-01
RELOOK_S = 3600.0  # how long what hardware there is (display connectors, temperature sensors) is trusted


class DisplaySource:
    """Number of connected displays (monitors, projectors), or None when it cannot be known."""

    def count(self) -> Optional[int]:
        return None


class DrmDisplaySource(DisplaySource):
    """Linux: connectors in /sys/class/drm whose status is 'connected'. Which connectors there are is
    looked up hourly (they come with the graphics driver); their status every time."""

    def __init__(self, root: str = "/sys/class/drm", clock: Callable[[], float] = time.monotonic) -> None:
        self.root, self.clock = root, clock
        self._paths: List[str] = []
        self._looked = -RELOOK_S

    def count(self) -> Optional[int]:
        if self.clock() - self._looked >= RELOOK_S:
            self._paths = glob.glob(os.path.join(self.root, "card*-*", "status"))
            self._looked = self.clock()
        paths = self._paths
        if not paths:
            return None  # no DRM driver (virtual machine, server): unknown, not missing
        n = 0
        for p in paths:
            try:
                with open(p, encoding="ascii") as f:
                    n += f.read().strip() == "connected"
            except OSError:
                continue
        return n


class WindowsDisplaySource(DisplaySource):
    """Windows: GetSystemMetrics(SM_CMONITORS) — display monitors on the desktop."""

    SM_CMONITORS = 80

    def __init__(self, user32: Any = None) -> None:
        if user32 is None:
            import ctypes

            user32 = ctypes.windll.user32  # type: ignore[attr-defined]
        self.user32 = user32

    def count(self) -> Optional[int]:
        return int(self.user32.GetSystemMetrics(self.SM_CMONITORS))


class SessionDisplaySource(DisplaySource):
    """Windows service: the display count the user-session helper wrote (session 0 has no real monitors)."""

    def __init__(self, path: str, max_age_s: float = 90.0, wall: Callable[[], float] = time.time) -> None:
        self.path, self.max_age_s, self.wall = path, max_age_s, wall

    def count(self) -> Optional[int]:
        try:
            with open(self.path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return None  # nobody logged in: unknown
        n = obj.get("displays") if isinstance(obj, dict) else None
        if not isinstance(n, int) or abs(self.wall() - float(obj.get("ts", 0))) > self.max_age_s:
            return None
        return n


def default_display_source(data_dir: str = "") -> DisplaySource:
    if sys.platform == "win32":
        return SessionDisplaySource(os.path.join(data_dir, "session", "session.json")) if data_dir \
            else WindowsDisplaySource()
    return DrmDisplaySource()


class CpuTemperature:
    """:func:`max_cpu_temperature`, except that where there are no sensors (virtual machines, Windows)
    it asks again only hourly instead of walking /sys/class/hwmon every minute for nothing."""

    def __init__(self, read: Optional[Callable[[], Optional[float]]] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read: Callable[[], Optional[float]] = read if read is not None else max_cpu_temperature
        self.clock = clock
        self._none_until = 0.0

    def __call__(self) -> Optional[float]:
        if self.clock() < self._none_until:
            return None
        value = self.read()
        if value is None:
            self._none_until = self.clock() + RELOOK_S
        return value


def max_cpu_temperature() -> Optional[float]:
    """The hottest CPU sensor in °C, or None where psutil has no sensors (Windows, VMs)."""
    read = getattr(psutil, "sensors_temperatures", None)
    if read is None:
        return None
    temps = read() or {}
    values = [t.current for name, entries in temps.items() for t in entries
              if t.current and (name in ("coretemp", "k10temp", "zenpower", "cpu_thermal", "acpitz")
                                or "cpu" in name.lower() or "package" in (t.label or "").lower())]
    return max(values) if values else None


def sntp_offset(server: str, timeout: float = 2.0, wall: Callable[[], float] = time.time) -> float:
    """Seconds the local clock is behind (+) or ahead (-) of an (S)NTP server (RFC 4330, client mode)."""
    host, _, port = server.partition(":")
    packet = b"\x1b" + 47 * b"\0"  # LI 0, version 3, mode 3 (client)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        t0 = wall()
        s.sendto(packet, (host, int(port or 123)))
        data, _ = s.recvfrom(512)
        t3 = wall()
    if len(data) < 48:
        raise OSError("short SNTP reply")
    rx_s, rx_f, tx_s, tx_f = struct.unpack("!II II", data[32:40] + data[40:48])
    t1 = rx_s - NTP_EPOCH + rx_f / 2 ** 32
    t2 = tx_s - NTP_EPOCH + tx_f / 2 ** 32
    return ((t1 - t0) + (t2 - t3)) / 2


def check_clock(ctx: "Context") -> Optional[float]:
    """The clock offset, from the configured time server or a recent command's ``issued`` time."""
    if ctx.cfg.time_server:
        return float(sntp_offset(ctx.cfg.time_server))
    return getattr(ctx, "clock_offset", None)


def disk_detail() -> Tuple[float, str]:
    u = system.shared().disk()
    return u.percent, "system drive %s %.0f%% full, %.1f GB free" % (system.system_drive(), u.percent, u.free / 1e9)


class FaultProbe(Probe):
    name = "faults"
    period = "fault_s"
    emits = ("fault",)
    fields = {"code": "disk_full, display_missing, overheat, memory_exhausted, clock_skew, "
                      "unclean_shutdown, agent_crash, outbox_overflow",
              "severity": "info / warning / critical", "state": "raised / cleared",
              "detail": "a sentence with the measured value"}

    def __init__(self, displays: Optional[DisplaySource] = None,
                 temperature: Optional[Callable[[], Optional[float]]] = None) -> None:
        self.displays = displays
        self.temperature = temperature or CpuTemperature()

    def setup(self, ctx: "Context") -> None:
        if self.displays is None:
            self.displays = default_display_source(ctx.cfg.data_dir)

    def run(self, ctx: "Context") -> None:
        cfg, faults = ctx.cfg, ctx.faults
        disk = run_probe("disk", disk_detail)
        if disk is not None:
            faults.observe("disk_full", disk[0] >= cfg.disk_full_pct, "warning", disk[1])
        n = run_probe("displays", self.displays.count) if self.displays is not None else None
        if n is not None:
            faults.observe("display_missing", n == 0, "warning", "no display or projector is connected"
                           if n == 0 else "%d display(s) connected" % n)
        temp = run_probe("temperature", self.temperature)
        if temp is not None:
            faults.observe("overheat", temp >= cfg.temp_limit_c, "critical", "CPU at %.0f °C (limit %.0f °C)"
                           % (temp, cfg.temp_limit_c))
        mem = run_probe("memory", system.shared().memory)
        if mem is not None:
            swap_full = False
            if mem.percent >= cfg.mem_full_pct:  # swap only then (psutil reads all of /proc/vmstat for it)
                swap = run_probe("swap", psutil.swap_memory)
                swap_full = swap is None or swap.total == 0 or swap.percent >= 80
            faults.observe("memory_exhausted", mem.percent >= cfg.mem_full_pct and swap_full, "warning",
                           "memory %.0f%% used, %d MB available" % (mem.percent, mem.available // 2 ** 20))
        offset = run_probe("clock", check_clock, None, ctx)
        if offset is not None:
            faults.observe("clock_skew", abs(offset) > cfg.clock_tolerance_s, "warning",
                           "the clock is %+.0f s off the reference time" % -offset)
        report_outbox(ctx)


def report_outbox(ctx: "Context") -> None:
    """Report dropped events (outbox full) as fault ``outbox_overflow``: raised once at the first drop
    (with counts by type and the seq range), cleared with the episode's totals once there is room again.
    The collector sees the dropped seqs as a gap that this fault explains."""
    report = ctx.outbox.take_drop_report()
    if not report and not ctx.faults.is_open("outbox_overflow"):
        return  # the usual minute: nothing dropped, nothing to clear (and no query)
    episode = ctx.get_state("overflow_episode")
    if report:
        if episode:
            episode["dropped"] += report["dropped"]
            for k, v in report["types"].items():
                episode["types"][k] = episode["types"].get(k, 0) + v
            episode["last_seq"] = max(episode["last_seq"], report["last_seq"])
        else:
            episode = report
        ctx.set_state("overflow_episode", episode)
    if report and not ctx.faults.is_open("outbox_overflow"):
        ctx.faults.raise_("outbox_overflow", "warning", _drop_detail(report), **report)
    elif ctx.faults.is_open("outbox_overflow") and episode:
        ctx.faults.observe("outbox_overflow", ctx.outbox.fill > 0.5, detail=_drop_detail(episode))
        if not ctx.faults.is_open("outbox_overflow"):
            ctx.set_state("overflow_episode", None)


def _drop_detail(r: dict) -> str:
    return "outbox full: dropped %d events (%s), seq %d-%d" % (
        r["dropped"], ", ".join("%s %d" % kv for kv in sorted(r["types"].items())), r["first_seq"], r["last_seq"])
