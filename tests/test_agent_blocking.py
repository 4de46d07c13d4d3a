"""Blocking cannot hit the system: the agent ends only programs of the person logged in at the PC.

The real-process test starts its own victims (copies of sleep(1) under a unique name) as the "session
user" (nobody), as root and as another user; the deny rule names only them, and only the session user's
one is ended. Windows and logind are faked at the OS boundary."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.probes import software
from agent.probes.blockguard import (
    BlockGuard,
    LinuxSessions,
    Owner,
    Seat,
    WindowsSessions,
    refusal,
    service_account,
)
from agent.probes.logind import LoginctlLogind
from common.signing import public_b64
from tests.test_agent_probes import events, make_ctx

NOBODY = 65534
OTHER = 1  # "daemon": another, non-root user
SEAT = Seat(1000, None, frozenset([500]))
USER = Owner(1000, "", None)
AGENT = frozenset([42, 1])  # the agent (42) and its ancestor (init)


@pytest.mark.parametrize("pid,name,exe,owner,seat,lineage,why", [
    (7, "tetris", "/home/t/tetris", USER, SEAT, [300, 1], None),
    (7, "gnome-shell", "/usr/bin/gnome-shell", USER, SEAT, [300, 1], "a system program"),
    (7, "Xwayland", "/usr/bin/Xwayland", USER, SEAT, [300, 1], "a system program"),
    (7, "explorer.exe", "C:\\Windows\\explorer.exe", USER, SEAT, [], "a system program"),
    (7, "ukui-panel", "/usr/bin/ukui-panel", USER, SEAT, [], "a system program"),
    (7, "python3", "/usr/bin/python3.11", USER, SEAT, [], "a system program"),
    (7, "agent", "/opt/bbt/agent-bin", USER, SEAT, [], "the agent's own program"),
    (42, "tetris", "/home/t/tetris", USER, SEAT, [1], "the agent's own process tree"),
    (1, "tetris", "/home/t/tetris", USER, SEAT, [], "the agent's own process tree"),
    (9, "tetris", "/home/t/tetris", USER, SEAT, [42, 1], "the agent's own process tree"),  # its child
    (7, "tetris", "/home/t/tetris", USER, None, [1], "nobody is logged in at the PC"),
    (500, "tetris", "/home/t/tetris", USER, SEAT, [1], "the desktop session's leader"),
    (7, "tetris", "/home/t/tetris", None, SEAT, [1], "its owner is unknown"),
    (7, "tetris", "/home/t/tetris", Owner(0, "", None), SEAT, [1], "it runs as the system or a service"),
    (7, "tetris", "/home/t/tetris", Owner(None, "", None), SEAT, [1], "another user's process"),  # setuid
    (7, "tetris", "/home/t/tetris", Owner(1001, "", None), SEAT, [1], "another user's process"),
    (7, "game.exe", "D:\\game.exe", Owner(None, "PC1\\student", 1), Seat(None, 1), [], None),
    (7, "game.exe", "D:\\game.exe", Owner(None, "PC1\\student", 0), Seat(None, 1), [],
     "it runs as the system or a service"),
    (7, "game.exe", "D:\\game.exe", Owner(None, "NT AUTHORITY\\SYSTEM", 1), Seat(None, 1), [],
     "it runs as the system or a service"),
    (7, "game.exe", "D:\\game.exe", Owner(None, "NT AUTHORITY\\LOCAL SERVICE", 1), Seat(None, 1), [],
     "it runs as the system or a service"),
    (7, "game.exe", "D:\\game.exe", Owner(None, "Window Manager\\DWM-1", 1), Seat(None, 1), [],
     "it runs as the system or a service"),
    (7, "game.exe", "D:\\game.exe", Owner(None, "PC1\\teacher", 2), Seat(None, 1), [],
     "not in the interactive user's session"),
])
def test_who_may_be_terminated(pid: int, name: str, exe: str, owner: Owner | None, seat: Seat | None,
                               lineage: list[int], why: str | None) -> None:
    assert refusal(pid, name, exe, owner, seat, lineage, 42, AGENT, "/opt/bbt/agent-bin") == why


def test_service_accounts() -> None:
    for acc in ("NT AUTHORITY\\SYSTEM", "NT AUTHORITY\\NETWORK SERVICE", "nt authority\\local service",
                "Font Driver Host\\UMFD-0", "SYSTEM"):
        assert service_account(acc), acc
    assert not service_account("BBT-PC01\\student") and not service_account("school\\王老师")


class Kernel32:
    def __init__(self, active: int, sessions: dict[int, int]) -> None:
        self.active, self.sessions = active, sessions

    def WTSGetActiveConsoleSessionId(self) -> int:  # noqa: N802 - Win32 names
        return self.active

    def ProcessIdToSessionId(self, pid: int, ref: Any) -> int:  # noqa: N802
        if pid not in self.sessions:
            return 0
        ref._obj.value = self.sessions[pid]
        return 1


def test_windows_sessions_through_the_win32_calls() -> None:
    k32 = Kernel32(1, {10: 1, 11: 0, 12: 1, 13: 2})
    accounts = {10: "PC1\\student", 11: "NT AUTHORITY\\SYSTEM", 12: "NT AUTHORITY\\NETWORK SERVICE", 13: "PC1\\x"}
    guard = BlockGuard(WindowsSessions(k32, accounts.__getitem__, lambda pid: {10: 5, 5: 4}.get(pid)), me=99,
                       agent_exe="C:\\Program Files\\bbt-agent\\bbt-agent.exe")
    assert guard.sessions.seat() == Seat(None, 1)
    assert guard.refusal(10, "game.exe", "D:\\game.exe") is None
    assert guard.refusal(11, "game.exe", "D:\\game.exe") == "it runs as the system or a service"
    assert guard.refusal(12, "game.exe", "D:\\game.exe") == "it runs as the system or a service"
    assert guard.refusal(13, "game.exe", "D:\\game.exe") == "not in the interactive user's session"
    assert guard.refusal(14, "game.exe", "D:\\game.exe") == "its owner is unknown"  # gone
    assert guard.refusal(10, "bbt-agent.exe", "C:\\Program Files\\bbt-agent\\bbt-agent.exe") == "a system program"
    for nobody_there in (0xFFFFFFFF, 0):  # nobody at the console / only session 0
        k32.active = nobody_there
        assert guard.refusal(10, "game.exe", "D:\\game.exe") == "nobody is logged in at the PC"
    assert ctypes.sizeof(ctypes.c_ulong) >= 4


def test_linux_seat_from_logind_or_the_helpers_file(tmp_path: Path) -> None:
    out = {("loginctl", "list-sessions", "--no-legend"): "  c1 120 gdm seat0 tty1\n  3 1000 teacher seat0 tty2\n",
           ("loginctl", "show-session", "c1", "-p", "Type", "-p", "Active", "-p", "Class"):
               "Type=x11\nActive=no\nClass=greeter\n",
           ("loginctl", "show-session", "3", "-p", "Type", "-p", "Active", "-p", "Class"):
               "Type=wayland\nActive=yes\nClass=user\n",
           ("loginctl", "show-session", "3", "-p", "User", "-p", "Leader"): "User=1000\nLeader=2345\n"}
    logind = LoginctlLogind(lambda a: out.get(tuple(a), ""))
    assert LinuxSessions(logind).seat() == Seat(1000, None, frozenset([2345]))
    out[("loginctl", "show-session", "3", "-p", "User", "-p", "Leader")] = "User=0\nLeader=2345\n"
    assert LinuxSessions(logind).seat() is None  # root at the desktop: nothing is ended
    out[("loginctl", "show-session", "3", "-p", "Type", "-p", "Active", "-p", "Class")] = "Type=tty\nActive=yes\n"
    fresh = tmp_path / "fresh.json"  # a helper's fresh file, of nobody
    fresh.write_text("{}")
    os.chown(fresh, NOBODY, NOBODY)
    assert LinuxSessions(logind, str(fresh)).seat() is None  # logind answers: no desktop session active
    # no logind session: the owner of the helper's file, while the helper keeps it fresh
    helper = tmp_path / "session.json"
    helper.write_text("{}")
    none = LoginctlLogind(lambda a: "")
    assert LinuxSessions(none, str(helper)).seat() is None  # written by root
    os.chown(helper, NOBODY, NOBODY)
    assert LinuxSessions(none, str(helper)).seat() == Seat(NOBODY, None)
    assert LinuxSessions(none, str(helper), wall=lambda: time.time() + 600).seat() is None  # stale: logged off
    assert LinuxSessions(none, str(tmp_path / "missing.json")).seat() is None
    me = LinuxSessions(none)
    assert me.owner(os.getpid()) == Owner(os.getuid(), "", None) and me.parent(os.getpid()) == os.getppid()
    assert me.owner(2 ** 22 + 1) is None


class Victim:
    """A copy of sleep(1) started through sh, which exits at once: like a program the person started, it is
    not a child of the test (the agent here): its parent becomes init."""

    def __init__(self, exe: str, uid: int | None) -> None:
        kw: dict[str, Any] = {} if uid is None else {"user": uid, "group": uid if uid == NOBODY else None}
        out = subprocess.run(["/bin/sh", "-c", '"$0" 120 >/dev/null 2>&1 & echo $!', exe], capture_output=True,
                             text=True, check=True, cwd="/", **kw)
        self.proc = psutil.Process(int(out.stdout.strip()))
        assert self.proc.uids().real == (0 if uid is None else uid)

    def alive(self) -> bool:
        try:
            return self.proc.is_running() and self.proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def ended_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.alive()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()  # psutil checks it is still the same process (pid and start time)


@pytest.fixture
def victims() -> Iterator[tuple[str, list[Victim]]]:
    """A folder everyone may read, with sleep(1) under a name nothing else on this machine has."""
    folder = tempfile.mkdtemp(prefix="bbt-victims-")
    os.chmod(folder, 0o755)
    name = "bbtvictim-" + uuid.uuid4().hex[:5]
    shutil.copy("/bin/sleep", os.path.join(folder, name))
    os.chmod(os.path.join(folder, name), 0o755)
    procs: list[Victim] = []
    yield os.path.join(folder, name), procs
    for p in procs:
        p.kill()
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir("/proc/self"), reason="starts processes as other users")
def test_only_the_session_users_process_is_terminated(tmp_path: Path, victims: tuple[str, list[Victim]]) -> None:
    exe, procs = victims
    mine, root, other = Victim(exe, NOBODY), Victim(exe, None), Victim(exe, OTHER)
    procs += [mine, root, other]
    time.sleep(software.YOUNG_S + 0.2)  # old enough to be judged at once
    helper = tmp_path / "session" / "session.json"  # what the user-session helper of "nobody" writes
    helper.parent.mkdir()
    helper.write_text(f'{{"ts": {time.time()}, "idle_s": 1}}')
    os.chown(helper, NOBODY, NOBODY)
    # an agent enforces "block" only with a pinned key (without one it reports: tests/test_trust_pinning.py)
    ctx = make_ctx(tmp_path, command_key=public_b64(Ed25519PrivateKey.generate()))
    ctx.set_policy({"software": {"deny": [os.path.basename(exe)], "action": "block"}})
    guard = BlockGuard(LinuxSessions(LoginctlLogind(lambda a: ""), str(helper)))
    probe = software.SoftwareProbe(software.ProcTable(), guard=guard)
    probe.setup(ctx)
    assert mine.ended_within(5)
    time.sleep(0.3)
    assert root.alive() and other.alive()  # never the system's or another user's
    got = {e["data"].get("block_refused") or e["data"]["action"]: e["data"] for e in events(ctx, "software")
           if e["data"]["exe"] == exe}
    assert set(got) == {"blocked", "it runs as the system or a service", "another user's process"}, got
    assert all(d["rule"] == os.path.basename(exe) for d in got.values())
    assert got["blocked"]["action"] == "blocked" and got["another user's process"]["action"] == "detected"
    # the agent's own children are never ended, even the session user's
    child = subprocess.Popen([exe, "120"], user=NOBODY, group=NOBODY, cwd="/")
    try:
        time.sleep(software.YOUNG_S + 0.2)
        probe.run(ctx)
        time.sleep(0.3)
        assert child.poll() is None
        assert events(ctx, "software")[-1]["data"]["block_refused"] == "the agent's own process tree"
    finally:
        child.kill()
        child.wait()
    # once the helper's file is stale (the user logged off) nothing is ended
    late = Victim(exe, NOBODY)
    procs.append(late)
    os.utime(helper, (time.time() - 600, time.time() - 600))
    time.sleep(software.YOUNG_S + 0.2)
    probe.run(ctx)
    time.sleep(0.3)
    assert late.alive()
    assert events(ctx, "software")[-1]["data"]["block_refused"] == "nobody is logged in at the PC"
