"""Running programs against the school's software policy (deny/allow globs, report or block).

A glob without a path separator is matched against the program name and the file name of its
executable; a glob with one against the whole executable path ('\\' read as '/'); always
case-insensitive. ``allow`` wins over ``deny``; with a non-empty ``allow`` list every program
that is neither allowed nor a system program is reported (rule ``allow-list``).
One ``software`` event per program start: a running process is remembered by (pid, start time).
Only new processes are looked at on each scan, so a scan costs little.
"""
from __future__ import annotations

import fnmatch
import logging
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

import psutil

from agent.probes import Probe
from agent.probes.blockguard import BlockGuard, default_guard
from agent.probes.execwatch import ExecWatcher, open_watcher
from protocol.programs import glob_hit, norm

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)

# Used when the policy gives no deny list: common games, chat and video clients.
DEFAULT_DENY = [
    # games
    "minecraft*", "javaw.exe*minecraft*", "steam", "steam.exe", "steamwebhelper*", "wegame*", "tgp_daemon*",
    "leagueclient*", "league of legends*", "genshinimpact*", "yuanshen*", "qqgame*", "4399*", "roblox*",
    "plantsvszombies*", "popcapgame*", "hearthstone*", "crossfire*", "dnf.exe", "epicgameslauncher*",
    "battle.net*", "sol.exe", "freecell.exe", "spider.exe", "minesweeper*", "mshearts.exe", "chess.exe",
    "sgame*", "aq*game*", "*\\steamapps\\*", "*/steamapps/*",
    # chat
    "qq", "qq.exe", "qqprotect*", "tim.exe", "wechat*", "weixin*", "telegram*", "discord*", "skype*",
    # video and live streaming
    "douyin*", "kuaishou*", "bilibili*", "iqiyi*", "qyclient*", "qqlive*", "tencentvideo*", "youku*",
    "mgtv*", "huya*", "douyu*", "pplive*", "xigua*",
]

FULL_SCAN_S = 300.0  # with process events, still list every process this often (prunes the memory of
# ended ones; a safety net)
YOUNG_S = 2.0  # a process this young is looked at again on the next scan (its name may still change)
SYSTEM_DIRS_POSIX = ("/usr/sbin/", "/sbin/", "/usr/lib/", "/lib/", "/usr/libexec/", "/usr/lib64/", "/lib64/",
                     "/usr/local/sbin/", "/opt/bbt/")


def system_program(exe: str, name: str) -> bool:
    """Programs an allow list never reports: the OS itself (kernel threads, system directories)."""
    if not exe:
        return True
    low = exe.replace("\\", "/").lower()
    if sys.platform == "win32" or ":/" in low:
        root = os.environ.get("SystemRoot", r"C:\Windows").replace("\\", "/").lower().rstrip("/") + "/"
        return low.startswith(root)
    return low.startswith(SYSTEM_DIRS_POSIX)




class _Globs:
    """A list of globs as two regular expressions (names, paths): one match instead of one per glob."""

    def __init__(self, globs: Sequence[str]) -> None:
        self.globs = list(globs)
        normed = [norm(g) for g in self.globs]
        names = [fnmatch.translate(g) for g in normed if "/" not in g]
        paths = [fnmatch.translate(g) for g in normed if "/" in g]
        self.names = re.compile("|".join(names)) if names else None
        self.paths = re.compile("|".join(paths)) if paths else None

    def hit(self, name: str, path: str, base: str) -> bool:
        """name lower-cased; path normalized (/, lower case); base its last part."""
        if self.names is not None and (self.names.match(name) or (base and self.names.match(base))):
            return True
        return self.paths is not None and self.paths.match(path) is not None

    def first(self, name: str, exe: str) -> Optional[str]:
        return next((g for g in self.globs if glob_hit(g, name, exe)), None)


class Rules:
    """The school's software rules, compiled once per policy."""

    def __init__(self, deny: Sequence[str], allow: Sequence[str], action: str = "report") -> None:
        self.deny, self.allow, self.action = _Globs(deny), _Globs(allow), action

    def verdict(self, name: str, exe: str) -> Optional[str]:
        """The rule a program breaks, or None: ``allow`` wins over ``deny``; with an allow list, a program
        neither allowed nor a system program breaks rule ``allow-list``."""
        path = norm(exe)
        low, base = name.lower(), path.rsplit("/", 1)[-1]
        if self.allow.hit(low, path, base):
            return None
        if self.deny.hit(low, path, base):
            return self.deny.first(name, exe)
        if self.allow.globs and not system_program(exe, name):
            return "allow-list"
        return None


def verdict(name: str, exe: str, deny: Sequence[str], allow: Sequence[str]) -> Optional[str]:
    """The rule a program breaks, or None. Pure: the whole policy logic lives here."""
    return Rules(deny, allow).verdict(name, exe)


def rules(ctx: "Context") -> Rules:
    raw = ctx.raw_policy.get("software")
    sw: Dict[str, Any] = raw if isinstance(raw, dict) else {}
    deny = list(sw["deny"]) if "deny" in sw else list(DEFAULT_DENY)
    return Rules(deny, list(sw.get("allow") or []), str(sw.get("action") or "report"))


class ProcessTable:
    """The OS boundary: which processes run, and what they are. psutil on every platform."""

    def pids(self) -> List[int]:
        return list(psutil.pids())

    def started(self) -> Optional[List[int]]:
        """Processes that started a program since the last call, if the OS tells (else None: scan all)."""
        return None

    def describe(self, pid: int) -> Optional[Tuple[float, str, str]]:
        """(start time, name, exe) or None when it is gone."""
        try:
            p = psutil.Process(pid)
            with p.oneshot():
                created, name = p.create_time(), p.name()
                try:
                    exe = p.exe()
                except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
                    exe = ""
            return created, name, exe
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
            return None

    def close(self) -> None:
        """Release what the table holds open."""

    def terminate(self, pid: int, created: float) -> None:
        p = psutil.Process(pid)
        if abs(p.create_time() - created) > 1.0:
            raise psutil.NoSuchProcess(pid)  # the pid now belongs to another process
        p.terminate()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # not p.wait(): a killed non-child stays a zombie until reaped
            try:
                if p.status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)
        p.kill()


class ProcTable(ProcessTable):
    """Linux: one read of /proc/<pid>/stat (name and start time) and one readlink per *new* process,
    without psutil's per-process object: the scan is most of the agent's CPU on a busy PC."""

    def __init__(self, proc: str = "/proc", watch: bool = False) -> None:
        self.proc = proc
        self.boot = float(psutil.boot_time())
        self.ticks = float(os.sysconf("SC_CLK_TCK"))
        self.watcher: Optional[ExecWatcher] = open_watcher() if watch else None

    def pids(self) -> List[int]:
        return [int(n) for n in os.listdir(self.proc) if n.isdigit()]

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None

    def started(self) -> Optional[List[int]]:
        if self.watcher is None:
            return None
        try:
            return self.watcher.started()
        except OSError as e:
            log.warning("process events failed (%s): the program scan lists /proc from now on", e)
            self.watcher.close()
            self.watcher = None
            return None

    def describe(self, pid: int) -> Optional[Tuple[float, str, str]]:
        base = "%s/%d/" % (self.proc, pid)
        try:  # os.open/os.read: three system calls (a Python file object makes nine)
            fd = os.open(base + "stat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            data = os.read(fd, 4096)
        except OSError:
            return None
        finally:
            os.close(fd)
        lpar, rpar = data.find(b"("), data.rfind(b")")
        name = data[lpar + 1:rpar].decode("utf-8", "replace")
        try:
            created = self.boot + float(data[rpar + 2:].split()[19]) / self.ticks  # field 22: starttime
        except (IndexError, ValueError):
            return None
        try:
            exe = os.readlink(base + "exe")
        except OSError:
            exe = ""  # a kernel thread, or not ours to see
        if exe.endswith(" (deleted)"):
            exe = exe[:-10]
        if len(name) >= 15:  # the kernel cuts names at 15 characters: take the file name then
            full = exe.rsplit("/", 1)[-1]
            if full.startswith(name):
                name = full
        return created, name, exe


def default_table() -> ProcessTable:
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        return ProcTable(watch=True)
    return ProcessTable()


class SoftwareProbe(Probe):
    name = "software"
    period = "scan_s"
    emits = ("software",)
    rerun_on_policy = True
    fields = {"action": "detected / blocked", "name": "program name", "exe": "path of the program file",
              "rule": "the policy rule that matched", "block_error": "why blocking failed, if it did",
              "block_refused": "why the agent did not end it (not the user's program, a system program...)"}

    def __init__(self, table: Optional[ProcessTable] = None, clock: Callable[[], float] = time.monotonic,
                 guard: Optional[BlockGuard] = None) -> None:
        self._table = table
        self._guard = guard  # who may be terminated (agent.probes.blockguard); made when first needed
        self.clock = clock
        self.known: Dict[int, float] = {}  # pid -> start time of every process already looked at
        self.reported: Dict[int, float] = {}
        self._rescan = True  # the first scan looks at everything
        self._young: Set[int] = set()  # processes too young to judge at the last look: look at them again
        self._full_at = -FULL_SCAN_S  # when every process was last listed
        self._rules: Optional[Rules] = None  # compiled from the policy when first needed

    @property
    def table(self) -> ProcessTable:
        if self._table is None:  # made on first use: the process-events check spawns a process
            self._table = default_table()
        return self._table

    def close(self) -> None:
        if self._table is not None:
            self._table.close()

    def waker(self) -> Optional[Any]:
        """The process-events socket, while the kernel tells which programs start (Linux, as root)."""
        watcher = getattr(self.table, "watcher", None)
        return watcher.sock if watcher is not None else None

    def setup(self, ctx: "Context") -> None:
        self.reported = {int(k): float(v) for k, v in (ctx.get_state("software_reported", {}) or {}).items()}
        ctx.policy_listeners.append(self.policy_changed)
        self.run(ctx)

    def policy_changed(self) -> None:
        """A new policy: look at every running process again (already reported ones stay reported)."""
        self._rescan = True
        self._rules = None

    def run(self, ctx: "Context") -> None:
        started = self.table.started()
        self.busy = started is None or bool(started)  # (None: events were lost, so many started)
        now = self.clock()
        if started is not None and not self._rescan and now - self._full_at < FULL_SCAN_S:
            again, self._young = self._young, set()
            if (started or again) and self._look(ctx, sorted(again.union(started))):  # most: nothing started
                self._remember(ctx)
            return
        self._full_at = now
        if self._rescan:
            self._rescan = False
            self.known.clear()
        pids = self.table.pids()
        alive = set(pids)
        for pid in [p for p in self.known if p not in alive]:
            del self.known[pid]
        gone = [p for p in self.reported if p not in alive]
        for pid in gone:
            del self.reported[pid]
        self._young = set()
        if self._look(ctx, [p for p in pids if p not in self.known]) or gone:
            self._remember(ctx)

    def _look(self, ctx: "Context", pids: List[int]) -> bool:
        """Judge these processes; True when one was reported."""
        if self._rules is None:
            self._rules = rules(ctx)
        policy = self._rules
        me = os.getpid()
        now = time.time()
        changed = False
        for pid in pids:
            if pid == me:
                continue
            info = self.table.describe(pid)
            if info is None:
                continue
            created, name, exe = info
            if now - created < YOUNG_S:  # may be between fork and exec: look again next scan
                self._young.add(pid)
                if not exe:
                    continue
            else:
                self.known[pid] = created
            rule = policy.verdict(name, exe)
            if rule is None or self.reported.get(pid) == created:
                continue
            self.reported[pid] = created
            changed = True
            self._report(ctx, pid, created, name, exe, rule, policy.action)
        return changed

    def _remember(self, ctx: "Context") -> None:
        ctx.set_state("software_reported", {str(k): v for k, v in self.reported.items()})

    def _report(self, ctx: "Context", pid: int, created: float, name: str, exe: str, rule: str,
                action: str) -> None:
        data: Dict[str, Any] = {"action": "detected", "name": name, "exe": exe, "rule": rule}
        if action == "block":
            self._block(ctx, pid, created, data)
        ctx.emit("software", data)

    def _block(self, ctx: "Context", pid: int, created: float, data: Dict[str, Any]) -> None:
        """End the process unless it is not the interactive user's to end (agent.probes.blockguard)."""
        name, exe = data["name"], data["exe"]
        if self._guard is None:
            self._guard = default_guard(str(getattr(ctx.cfg, "data_dir", "") or ""))
        why = "a system program" if system_program(exe, name) else self._guard.refusal(pid, name, exe)
        if why is not None:
            data["block_refused"] = why
            log.info("not blocking %s (pid %d): %s", name, pid, why)
            return
        try:
            self.table.terminate(pid, created)
            data["action"] = "blocked"
        except (psutil.Error, OSError) as e:
            data["block_error"] = type(e).__name__
            log.warning("could not block %s (pid %d): %s", name, pid, e)
