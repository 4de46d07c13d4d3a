"""Input idle time: seconds since the last keyboard/mouse/touch input — never what was typed.

Sources, tried in order by :func:`default_source`:

* ``SessionFileSource`` — what the user-session helper (``bbt agent helper``) writes. A service
  runs outside the user's desktop (Windows session 0, a system unit on Linux) and cannot see
  its input; the helper runs in the user's session and writes idle seconds and the foreground
  program's name to a small file in the data directory.
* ``WindowsIdleSource`` — GetLastInputInfo (works inside the interactive session).
* ``X11IdleSource`` — the XScreenSaver extension through ctypes (needs DISPLAY).
* ``LogindIdleSource`` — logind's IdleHint of the active graphical session (works from root,
  on Wayland too, when the desktop reports idleness), over the system D-Bus.

The service prefers the helper's file whenever it is fresh (``HelperFirstSource``): the helper starts at
the next logon after the install, and its answer also names the program in front.

Each sits behind ``IdleSource`` so that tests use fakes at the OS boundary.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

from agent.probes import run_command
from agent.probes.logind import LoginctlLogind, Logind, active_graphical_session, default_logind


class IdleSource:
    """Returns seconds since the last input, or None when it cannot be known."""

    def idle_seconds(self) -> Optional[float]:
        return None

    def foreground(self) -> Optional[str]:
        """Name of the program in front (never a window title), when this source knows it."""
        return None

    def sample(self) -> Tuple[Optional[float], Optional[str]]:
        """Both at once (a source that reads one file for both reads it once)."""
        return self.idle_seconds(), self.foreground()


class EnvIdleSource(IdleSource):
    """A plain number in a file (BBT_AGENT_IDLE_FILE): for tests and simple helpers."""

    def __init__(self, path: str) -> None:
        self.path = path

    def idle_seconds(self) -> Optional[float]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            return None


class SessionFileSource(IdleSource):
    """JSON {"ts": epoch, "idle_s": n, "foreground": name} from the user-session helper."""

    def __init__(self, path: str, max_age_s: float = 90.0, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self.max_age_s = max_age_s
        self.wall = wall

    def _read(self) -> Optional[dict]:
        try:
            with open(self.path, encoding="utf-8") as f:
                obj = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(obj, dict) or abs(self.wall() - float(obj.get("ts", 0))) > self.max_age_s:
            return None  # the helper is not running (nobody logged in) or stale
        return obj

    def idle_seconds(self) -> Optional[float]:
        return self.sample()[0]

    def foreground(self) -> Optional[str]:
        return self.sample()[1]

    def sample(self) -> Tuple[Optional[float], Optional[str]]:
        obj = self._read()
        if not obj:
            return None, None
        idle, fg = obj.get("idle_s"), obj.get("foreground")
        return (float(idle) if isinstance(idle, (int, float)) else None), (fg if isinstance(fg, str) else None)


class HelperFirstSource(IdleSource):
    """The helper's file while it is fresh, else ``then``: the helper installed with the agent starts at
    the next logon, and from then on its answer (with the foreground program) is used without a restart."""

    def __init__(self, helper: SessionFileSource, then: IdleSource) -> None:
        self.helper, self.then = helper, then

    def idle_seconds(self) -> Optional[float]:
        return self.sample()[0]

    def foreground(self) -> Optional[str]:
        return self.sample()[1]

    def sample(self) -> Tuple[Optional[float], Optional[str]]:
        idle, fg = self.helper.sample()
        if idle is None and fg is None:
            return self.then.sample()
        return idle, fg


class WindowsIdleSource(IdleSource):
    """GetLastInputInfo vs GetTickCount (both in ms, both wrap after 49.7 days: handled)."""

    def __init__(self, user32: Any = None, kernel32: Any = None) -> None:
        import ctypes

        if user32 is None or kernel32 is None:
            user32, kernel32 = ctypes.windll.user32, ctypes.windll.kernel32  # type: ignore[attr-defined]
        self.user32, self.kernel32 = user32, kernel32

        class LASTINPUTINFO(ctypes.Structure):
            _fields_ = [("cbSize", ctypes.c_uint), ("dwTime", ctypes.c_uint)]

        self.info_type = LASTINPUTINFO

    def idle_seconds(self) -> Optional[float]:
        import ctypes

        info = self.info_type()
        info.cbSize = ctypes.sizeof(self.info_type)
        if not self.user32.GetLastInputInfo(ctypes.byref(info)):
            return None
        now = int(self.kernel32.GetTickCount()) & 0xFFFFFFFF
        return ((now - info.dwTime) & 0xFFFFFFFF) / 1000.0

    def foreground(self) -> Optional[str]:
        import ctypes

        hwnd = self.user32.GetForegroundWindow()
        if not hwnd:
            return None
        pid = ctypes.c_ulong(0)
        self.user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
        return _process_name(int(pid.value))


class X11IdleSource(IdleSource):
    """XScreenSaverQueryInfo(display, root).idle in milliseconds; the foreground via xprop's _NET_WM_PID."""

    def __init__(self) -> None:
        if not os.environ.get("DISPLAY"):
            raise OSError("no X11 display")
        import ctypes
        import ctypes.util

        class XScreenSaverInfo(ctypes.Structure):
            _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int), ("kind", ctypes.c_int),
                        ("til_or_since", ctypes.c_ulong), ("idle", ctypes.c_ulong), ("eventMask", ctypes.c_ulong)]

        xlib = ctypes.util.find_library("X11")
        xss = ctypes.util.find_library("Xss")
        if not (xlib and xss and os.environ.get("DISPLAY")):
            raise OSError("no X11 display or libXss")
        self.x11 = ctypes.CDLL(xlib)
        self.xss = ctypes.CDLL(xss)
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
        self.x11.XDefaultRootWindow.restype = ctypes.c_ulong
        self.xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(XScreenSaverInfo)
        self.xss.XScreenSaverQueryInfo.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(XScreenSaverInfo)]
        self.display = self.x11.XOpenDisplay(None)
        if not self.display:
            raise OSError("cannot open X display %s" % os.environ.get("DISPLAY"))
        self.info = self.xss.XScreenSaverAllocInfo()

    def idle_seconds(self) -> Optional[float]:
        root = self.x11.XDefaultRootWindow(self.display)
        if not self.xss.XScreenSaverQueryInfo(self.display, root, self.info):
            return None
        return float(self.info.contents.idle) / 1000.0

    def foreground(self) -> Optional[str]:
        return x11_foreground(run_command)


def x11_foreground(run: Callable[[List[str]], str]) -> Optional[str]:
    """The active window's process name from _NET_ACTIVE_WINDOW and _NET_WM_PID (no title is read)."""
    out = run(["xprop", "-root", "_NET_ACTIVE_WINDOW"])
    wid = out.strip().split()[-1] if out.strip() else ""
    if not wid.startswith("0x") or int(wid, 16) == 0:
        return None
    out = run(["xprop", "-id", wid, "_NET_WM_PID"])
    tail = out.strip().split()[-1] if out.strip() else ""
    return _process_name(int(tail)) if tail.isdigit() else None


class LogindIdleSource(IdleSource):
    """logind's IdleHint/IdleSinceHint of the active graphical session (over D-Bus, else loginctl:
    :mod:`agent.probes.logind`). ``run``: loginctl through this function (tests)."""

    SESSION_TTL_S = 300.0  # the active session is looked up again after this (one question less per check)

    def __init__(self, run: Optional[Callable[[List[str]], str]] = None, wall: Callable[[], float] = time.time,
                 logind: Optional[Logind] = None) -> None:
        self.logind = logind or (LoginctlLogind(run) if run is not None else default_logind())
        self.wall = wall
        self._session: Optional[str] = None
        self._session_at = -1e18

    def _active_session(self) -> Optional[str]:
        return active_graphical_session(self.logind)

    def idle_seconds(self) -> Optional[float]:
        now = self.wall()
        if self._session is None or now - self._session_at > self.SESSION_TTL_S:
            self._session, self._session_at = self._active_session(), now
        sid = self._session
        if sid is None:
            return None
        props = self.logind.props(sid, "IdleHint", "IdleSinceHint")
        if not props:  # the session ended (logout): find the new one next time
            self._session = None
            return None
        if props.get("IdleHint") != "yes":
            return 0.0
        since_us = int(props.get("IdleSinceHint") or 0)
        return max(0.0, self.wall() - since_us / 1e6) if since_us else None


def _process_name(pid: int) -> Optional[str]:
    import psutil

    try:
        return str(psutil.Process(pid).name())
    except (psutil.Error, ValueError):
        return None


def default_source(data_dir: str = "") -> IdleSource:
    path = os.environ.get("BBT_AGENT_IDLE_FILE")
    if path:
        return EnvIdleSource(path)
    session_file = os.path.join(data_dir, "session", "session.json") if data_dir else ""
    if session_file and os.path.exists(session_file):
        return SessionFileSource(session_file)
    if sys.platform == "win32":
        if session_file and os.environ.get("USERNAME", "").endswith("$"):  # a service (SYSTEM)
            return SessionFileSource(session_file)
        return WindowsIdleSource()
    try:
        return X11IdleSource()
    except OSError:
        pass
    logind = default_logind()
    if logind.sessions():
        src = LogindIdleSource(logind=logind)
        return HelperFirstSource(SessionFileSource(session_file), src) if session_file else src
    if session_file:
        return SessionFileSource(session_file)  # the helper may start later
    return IdleSource()
