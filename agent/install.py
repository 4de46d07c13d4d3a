"""``bbt agent install`` / ``uninstall``: a systemd unit on Linux, a Windows service.

Both restart the agent after a crash and start the user-session helper (idle time and the
foreground program, see agent/helper.py) at every logon. Commands are run through ``run`` and
files written under directories given to the constructor, so tests use fakes and temp folders.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Callable, List, Optional

from common.errors import BbtError

Run = Callable[[List[str]], None]
SERVICE = "bbt-agent"


class InstallError(BbtError):
    pass


def run_checked(args: List[str]) -> None:
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                           timeout=60, check=False)
    except OSError as e:
        raise InstallError("cannot run %s: %s" % (args[0], e.strerror)) from None
    if r.returncode != 0:
        raise InstallError("%s failed (%d): %s" % (" ".join(args[:3]), r.returncode, r.stdout.strip()[:300]))


def agent_command(config: str, python: Optional[str] = None) -> List[str]:
    """How the service starts the agent: the frozen bbt-agent.exe, or this Python with -m agent."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "--config", config]
    return [python or sys.executable, "-m", "agent", "--config", config]


def _q(arg: str) -> str:
    return '"%s"' % arg if (" " in arg or not arg) else arg


UNIT = """[Unit]
Description=bbt classroom agent (班班通)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=5
TimeoutStopSec=20
Nice=10
Environment=MALLOC_ARENA_MAX=2
Environment=PYTHONUNBUFFERED=1

[Install]
WantedBy=multi-user.target
"""

AUTOSTART = """[Desktop Entry]
Type=Application
Name=bbt agent helper
Comment=Tells the bbt agent whether this PC is in use (idle time and program name only)
Exec={exec_helper}
NoDisplay=true
X-GNOME-Autostart-enabled=true
"""


class SystemdInstaller:
    def __init__(self, config: str, data_dir: str, unit_dir: str = "/etc/systemd/system",
                 autostart_dir: str = "/etc/xdg/autostart", python: Optional[str] = None,
                 run: Run = run_checked, start: bool = True) -> None:
        self.config, self.data_dir = config, data_dir
        self.unit_dir, self.autostart_dir = unit_dir, autostart_dir
        self.python, self.run, self.start = python, run, start

    @property
    def unit_path(self) -> str:
        return os.path.join(self.unit_dir, SERVICE + ".service")

    @property
    def autostart_path(self) -> str:
        return os.path.join(self.autostart_dir, SERVICE + "-helper.desktop")

    def install(self) -> List[str]:
        if not os.path.exists(self.config):
            raise InstallError("agent config %s does not exist: write it first (see docs/agent-install.md)"
                               % self.config)
        cmd = agent_command(self.config, self.python)
        helper = [cmd[0], "-m", "agent", "helper", "--data-dir", self.data_dir]
        os.makedirs(self.unit_dir, exist_ok=True)
        os.makedirs(self.autostart_dir, exist_ok=True)
        with open(self.unit_path, "w", encoding="utf-8") as f:
            f.write(UNIT.format(exec_start=" ".join(_q(a) for a in cmd)))
        with open(self.autostart_path, "w", encoding="utf-8") as f:
            f.write(AUTOSTART.format(exec_helper=" ".join(_q(a) for a in helper)))
        session = os.path.join(self.data_dir, "session")
        os.makedirs(session, exist_ok=True)
        os.chmod(session, 0o1777)  # the helper runs as the person logged in; sticky like /tmp
        if self.start:
            self.run(["systemctl", "daemon-reload"])
            self.run(["systemctl", "enable", "--now", SERVICE + ".service"])
        return [self.unit_path, self.autostart_path]

    def uninstall(self) -> None:
        if self.start and os.path.exists(self.unit_path):
            self.run(["systemctl", "disable", "--now", SERVICE + ".service"])
        for p in (self.unit_path, self.autostart_path):
            if os.path.exists(p):
                os.remove(p)
        if self.start:
            self.run(["systemctl", "daemon-reload"])


RUN_KEY = r"SOFTWARE\Microsoft\Windows\CurrentVersion\Run"


class WindowsInstaller:
    """sc.exe for the service (auto start, restart on failure), HKLM Run for the session helper."""

    def __init__(self, config: str, data_dir: str, exe: Optional[str] = None, run: Run = run_checked,
                 winreg: Any = None, start: bool = True) -> None:
        self.config, self.data_dir, self.run, self.start = config, data_dir, run, start
        self.exe = exe or sys.executable
        if winreg is None:
            import winreg as _winreg  # type: ignore[import-not-found,unused-ignore]

            winreg = _winreg
        self.reg = winreg

    def install(self) -> List[str]:
        bin_path = '"%s" service' % self.exe
        self.run(["sc", "create", SERVICE, "binPath=", bin_path, "start=", "auto",
                  "DisplayName=", "bbt classroom agent"])
        self.run(["sc", "description", SERVICE, "bbt 班班通 classroom agent: power, usage, software, faults"])
        self.run(["sc", "failure", SERVICE, "reset=", "86400", "actions=",
                  "restart/5000/restart/10000/restart/60000"])
        self.run(["sc", "failureflag", SERVICE, "1"])
        session = os.path.join(self.data_dir, "session")
        os.makedirs(session, exist_ok=True)
        self.run(["icacls", session, "/grant", "*S-1-5-32-545:(OI)(CI)M"])  # Users may write the helper file
        key = self.reg.CreateKeyEx(self.reg.HKEY_LOCAL_MACHINE, RUN_KEY, 0, self.reg.KEY_SET_VALUE)
        try:
            self.reg.SetValueEx(key, SERVICE + "-helper", 0, self.reg.REG_SZ,
                                '"%s" helper --data-dir "%s"' % (self.exe, self.data_dir))
        finally:
            self.reg.CloseKey(key)
        if self.start:
            self.run(["sc", "start", SERVICE])
        return [SERVICE]

    def uninstall(self) -> None:
        for args in (["sc", "stop", SERVICE], ["sc", "delete", SERVICE]):
            try:
                self.run(args)
            except InstallError:
                pass  # already stopped / not installed
        try:
            key = self.reg.OpenKey(self.reg.HKEY_LOCAL_MACHINE, RUN_KEY, 0, self.reg.KEY_SET_VALUE)
        except OSError:
            return
        try:
            self.reg.DeleteValue(key, SERVICE + "-helper")
        except OSError:
            pass
        finally:
            self.reg.CloseKey(key)


def installer(config: str, data_dir: str, **kw: Any) -> Any:
    if sys.platform == "win32":
        return WindowsInstaller(config, data_dir, run=kw.get("run", run_checked), start=kw.get("start", True))
    return SystemdInstaller(config, data_dir, **kw)
