"""Which processes the agent may terminate when the policy says ``block`` (docs/security.md).

Only programs of the person at the PC: a process of the interactive user's session, never

* a system or desktop program (``protocol.programs``: explorer.exe, svchost.exe, gnome-shell, Xorg,
  systemd, dbus-daemon, sddm/lightdm/gdm, the Kylin/UOS desktops, shells, Python...),
* a process of root / SYSTEM, LOCAL SERVICE, NETWORK SERVICE, or in Windows session 0 (services),
* a process of another user or another session, or anything while nobody is logged in,
* the desktop session's leader (logind ``Leader``), the agent, its ancestors and children, and any
  process of the agent's own program (the user-session helper runs it too).

"The interactive user" is, on Linux, the owner (uid) of logind's active graphical session, or,
without logind, of the file the user-session helper keeps fresh; on Windows, the active console
session (WTSGetActiveConsoleSessionId). The OS is asked through :class:`Sessions` so that tests
use fakes at that boundary; :func:`refusal` decides and is pure.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, FrozenSet, List, NamedTuple, Optional

from agent.probes.logind import Logind, active_graphical_session, default_logind
from protocol.programs import is_system_program, norm

NO_SESSION = 0xFFFFFFFF
SERVICE_ACCOUNTS = frozenset(("system", "local service", "network service", "localservice", "networkservice"))
SERVICE_DOMAINS = frozenset(("nt authority", "nt-autorität", "autorite nt", "window manager", "font driver host"))


class Owner(NamedTuple):
    uid: Optional[int]  # Linux: the uid when real, effective and saved agree (else None)
    account: str  # Windows: DOMAIN\\user ("" on Linux)
    session: Optional[int]  # Windows: the session id (None on Linux)


class Seat(NamedTuple):
    """The person at the PC: their uid (Linux) or console session (Windows), and pids never to end."""
    uid: Optional[int]
    session: Optional[int]
    keep: FrozenSet[int] = frozenset()


class Sessions:
    """The OS boundary."""

    def seat(self) -> Optional[Seat]:
        """Who is at the PC now (None: nobody, or it cannot be known)."""
        return None

    def owner(self, pid: int) -> Optional[Owner]:
        return None

    def parent(self, pid: int) -> Optional[int]:
        return None


def service_account(account: str) -> bool:
    domain, _, user = account.rpartition("\\")
    user, domain = user.strip().lower(), domain.strip().lower()
    return user in SERVICE_ACCOUNTS or domain in SERVICE_DOMAINS or user.startswith(("dwm-", "umfd-"))


def refusal(pid: int, name: str, exe: str, owner: Optional[Owner], seat: Optional[Seat], lineage: List[int],
            me: int, agent_pids: FrozenSet[int], agent_exe: str) -> Optional[str]:
    """Why this process must not be terminated, or None when it may. ``lineage``: its ancestors'
    pids; ``me``: the agent's pid; ``agent_pids``: the agent and its ancestors."""
    if is_system_program(name, exe):
        return "a system program"
    if exe and agent_exe and norm(exe) == norm(agent_exe):
        return "the agent's own program"
    if pid in agent_pids or me in lineage:
        return "the agent's own process tree"
    if seat is None:
        return "nobody is logged in at the PC"
    if pid in seat.keep:
        return "the desktop session's leader"
    if owner is None:
        return "its owner is unknown"
    if owner.uid == 0 or owner.session == 0 or service_account(owner.account):
        return "it runs as the system or a service"
    if seat.uid is not None and owner.uid != seat.uid:
        return "another user's process"
    if seat.session is not None and owner.session != seat.session:
        return "not in the interactive user's session"
    return None


class BlockGuard:
    """:func:`refusal` with the facts gathered from :class:`Sessions` (only when blocking, which is rare)."""

    def __init__(self, sessions: Sessions, me: Optional[int] = None, agent_exe: Optional[str] = None) -> None:
        self.sessions = sessions
        self.me = os.getpid() if me is None else me
        self.agent_exe = os.path.realpath(sys.executable) if agent_exe is None else agent_exe

    def lineage(self, pid: int) -> List[int]:
        out: List[int] = []
        p = self.sessions.parent(pid)
        while p is not None and p > 0 and p not in out and len(out) < 64:
            out.append(p)
            p = self.sessions.parent(p)
        return out

    def refusal(self, pid: int, name: str, exe: str) -> Optional[str]:
        mine = frozenset([self.me] + self.lineage(self.me))
        return refusal(pid, name, exe, self.sessions.owner(pid), self.sessions.seat(), self.lineage(pid),
                       self.me, mine, self.agent_exe)


class LinuxSessions(Sessions):
    """logind's active graphical session (uid, leader); without logind, the owner of the helper's fresh file."""

    def __init__(self, logind: Optional[Logind] = None, helper_file: str = "", proc: str = "/proc",
                 max_age_s: float = 90.0, wall: Callable[[], float] = time.time) -> None:
        self.logind, self.helper_file, self.proc = logind, helper_file, proc
        self.max_age_s, self.wall = max_age_s, wall

    def seat(self) -> Optional[Seat]:
        if self.logind is None:
            self.logind = default_logind()
        sid = active_graphical_session(self.logind)
        if sid is not None:
            props = self.logind.props(sid, "User", "Leader")
            uid, leader = props.get("User", ""), props.get("Leader", "")
            if not uid.isdigit() or int(uid) == 0:
                return None
            return Seat(int(uid), None, frozenset([int(leader)] if leader.isdigit() else []))
        if self.logind.sessions():  # logind answers: no desktop session is active (login screen, text console)
            return None
        try:
            st = os.stat(self.helper_file) if self.helper_file else None
        except OSError:
            st = None
        if st is None or st.st_uid == 0 or abs(self.wall() - st.st_mtime) > self.max_age_s:
            return None
        return Seat(st.st_uid, None)

    def owner(self, pid: int) -> Optional[Owner]:
        try:
            with open("%s/%d/status" % (self.proc, pid), encoding="utf-8", errors="replace") as f:
                line = next((x for x in f if x.startswith("Uid:")), "")
        except OSError:
            return None
        ids = line.split()[1:4]
        if len(ids) != 3 or not all(i.isdigit() for i in ids):
            return None
        return Owner(int(ids[0]) if len(set(ids)) == 1 else None, "", None)

    def parent(self, pid: int) -> Optional[int]:
        try:
            with open("%s/%d/stat" % (self.proc, pid), "rb") as f:
                data = f.read()
            return int(data[data.rfind(b")") + 2:].split()[1])
        except (OSError, IndexError, ValueError):
            return None


class WindowsSessions(Sessions):
    """The active console session; a process's session (ProcessIdToSessionId) and account (psutil)."""

    def __init__(self, kernel32: Any = None, account: Optional[Callable[[int], str]] = None,
                 parent: Optional[Callable[[int], Optional[int]]] = None) -> None:
        if kernel32 is None:
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        self.k32 = kernel32
        self._account = account or _psutil_account
        self._parent = parent or _psutil_parent

    def seat(self) -> Optional[Seat]:
        sid = int(self.k32.WTSGetActiveConsoleSessionId()) & 0xFFFFFFFF
        if sid in (0, NO_SESSION):
            return None
        return Seat(None, sid)

    def owner(self, pid: int) -> Optional[Owner]:
        import ctypes

        sid = ctypes.c_ulong(0)
        if not self.k32.ProcessIdToSessionId(pid, ctypes.byref(sid)):
            return None
        try:
            account = self._account(pid)
        except Exception:  # gone, or access denied: not ours to end
            return None
        return Owner(None, account, int(sid.value))

    def parent(self, pid: int) -> Optional[int]:
        return self._parent(pid)


def _psutil_account(pid: int) -> str:
    import psutil

    return str(psutil.Process(pid).username())


def _psutil_parent(pid: int) -> Optional[int]:
    import psutil

    try:
        return int(psutil.Process(pid).ppid())
    except (psutil.Error, ValueError):
        return None


def default_guard(data_dir: str) -> BlockGuard:
    if sys.platform == "win32":
        return BlockGuard(WindowsSessions())
    helper = os.path.join(data_dir, "session", "session.json") if data_dir else ""
    return BlockGuard(LinuxSessions(helper_file=helper))
