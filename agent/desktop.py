"""The OS boundary for what the agent does to the PC: show a notice, power off.

``Desktop`` implementations: Windows (WTSSendMessageW into the active console session — works
from a service in session 0 — and ``shutdown.exe``), Linux (``notify-send`` when a display is
reachable, ``wall`` otherwise, and ``systemctl poweroff``), and ``LogDesktop`` (only logs; tests
and ``desktop = none``).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from typing import Any, List

log = logging.getLogger(__name__)
TITLE = "班班通 / bbt"


class Desktop:
    def notify(self, text: str, duration_s: int = 30) -> None:
        raise NotImplementedError

    def power_off(self) -> None:
        raise NotImplementedError


class LogDesktop(Desktop):
    def __init__(self) -> None:
        self.notices: List[str] = []
        self.powered_off = 0

    def notify(self, text: str, duration_s: int = 30) -> None:
        self.notices.append(text)
        log.info("notice for the person at the PC (%ds): %s", duration_s, text)

    def power_off(self) -> None:
        self.powered_off += 1
        log.warning("power off requested (desktop = none: not done)")


def _spawn(args: List[str]) -> None:
    subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     close_fds=True)


class LinuxDesktop(Desktop):
    def notify(self, text: str, duration_s: int = 30) -> None:
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            if shutil.which("notify-send"):
                _spawn(["notify-send", "-u", "critical", "-t", str(duration_s * 1000), TITLE, text])
                return
        if shutil.which("wall"):
            p = subprocess.Popen(["wall"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            p.communicate(text.encode("utf-8"), timeout=10)

    def power_off(self) -> None:
        _spawn(["systemctl", "poweroff"] if shutil.which("systemctl") else ["shutdown", "-h", "now"])


class WindowsDesktop(Desktop):
    MB_OK_TOPMOST_ICONWARNING = 0x00000000 | 0x00040000 | 0x00000030

    def __init__(self, wtsapi32: Any = None, kernel32: Any = None, spawn: Any = _spawn) -> None:
        if wtsapi32 is None or kernel32 is None:
            import ctypes

            wtsapi32, kernel32 = ctypes.windll.wtsapi32, ctypes.windll.kernel32  # type: ignore[attr-defined]
        self.wts, self.k32, self.spawn = wtsapi32, kernel32, spawn

    def notify(self, text: str, duration_s: int = 30) -> None:
        session = int(self.k32.WTSGetActiveConsoleSessionId())
        if session == 0xFFFFFFFF:
            return  # nobody at the console
        import ctypes

        resp = ctypes.c_ulong(0)
        ok = self.wts.WTSSendMessageW(None, session, TITLE, len(TITLE) * 2, text, len(text) * 2,
                                      self.MB_OK_TOPMOST_ICONWARNING, int(duration_s), ctypes.byref(resp), False)
        if not ok:
            raise OSError("WTSSendMessageW failed")

    def power_off(self) -> None:
        self.spawn(["shutdown", "/s", "/f", "/t", "0"])


def default_desktop(kind: str = "auto") -> Desktop:
    if kind == "none":
        return LogDesktop()
    return WindowsDesktop() if sys.platform == "win32" else LinuxDesktop()
