"""Windows code paths (ctypes, winreg, sc.exe) and Linux sources (logind, sysfs, dpkg), each tested
through a fake at the OS boundary; the installers write into temporary folders."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agent import install
from agent.desktop import WindowsDesktop
from agent.helper import write_state
from agent.probes import idle, inventory, usb
from agent.probes.drift import WorkgroupSource
from tests.test_agent_probes import FakeIdle, events, make_ctx


class User32:
    def __init__(self, last_input_ms: int, fg_pid: int = 0) -> None:
        self.last, self.fg_pid = last_input_ms, fg_pid

    def GetLastInputInfo(self, ref: Any) -> int:  # noqa: N802 - Win32 names
        assert ref._obj.cbSize == 8
        ref._obj.dwTime = self.last
        return 1

    def GetForegroundWindow(self) -> int:  # noqa: N802
        return 0x1234 if self.fg_pid else 0

    def GetWindowThreadProcessId(self, hwnd: int, ref: Any) -> int:  # noqa: N802
        ref._obj.value = self.fg_pid
        return 1


class Kernel32:
    def __init__(self, tick: int) -> None:
        self.tick = tick

    def GetTickCount(self) -> int:  # noqa: N802
        return self.tick


def test_windows_idle_time_and_foreground_program_name() -> None:
    src = idle.WindowsIdleSource(User32(last_input_ms=10_000), Kernel32(tick=70_000))
    assert src.idle_seconds() == 60.0
    wrapped = idle.WindowsIdleSource(User32(last_input_ms=0xFFFFF000), Kernel32(tick=0x1000))  # 49.7-day wrap
    assert wrapped.idle_seconds() == 0x2000 / 1000.0
    me = idle.WindowsIdleSource(User32(0, fg_pid=os.getpid()), Kernel32(0))
    assert me.foreground() and "python" in (me.foreground() or "").lower()  # a process name, never a title
    assert idle.WindowsIdleSource(User32(0), Kernel32(0)).foreground() is None


def test_logind_idle_hint_and_x11_foreground() -> None:
    out = {("loginctl", "list-sessions", "--no-legend"): "  3 1000 teacher seat0 tty2\n  c1 120 gdm seat0 tty1\n",
           ("loginctl", "show-session", "3", "-p", "Type", "-p", "Active", "-p", "Class"):
               "Type=x11\nActive=yes\nClass=user\n",
           ("loginctl", "show-session", "3", "-p", "IdleHint", "-p", "IdleSinceHint"):
               "IdleHint=yes\nIdleSinceHint=1799999400000000\n"}
    calls: list[tuple[str, ...]] = []

    def run(args: list[str]) -> str:
        calls.append(tuple(args))
        return out.get(tuple(args), "")

    src = idle.LogindIdleSource(run, wall=lambda: 1_800_000_000.0)
    assert src.idle_seconds() == 600.0
    out[("loginctl", "show-session", "3", "-p", "IdleHint", "-p", "IdleSinceHint")] = "IdleHint=no\n"
    assert src.idle_seconds() == 0.0
    assert calls.count(("loginctl", "list-sessions", "--no-legend")) == 1  # the session is remembered
    del out[("loginctl", "show-session", "3", "-p", "IdleHint", "-p", "IdleSinceHint")]  # logged out
    assert src.idle_seconds() is None and src._session is None
    xprop = {("xprop", "-root", "_NET_ACTIVE_WINDOW"): "_NET_ACTIVE_WINDOW(WINDOW): window id # 0x3a00007\n",
             ("xprop", "-id", "0x3a00007", "_NET_WM_PID"): f"_NET_WM_PID(CARDINAL) = {os.getpid()}\n"}
    assert "python" in (idle.x11_foreground(lambda a: xprop.get(tuple(a), "")) or "").lower()


def test_session_file_from_the_user_session_helper(tmp_path: Path) -> None:
    path = str(tmp_path / "session.json")
    fake = FakeIdle()
    fake.idle, fake.fg = 42.0, "EasiNote.exe"
    state = write_state(path, fake, wall=lambda: 1000.0)
    assert state == {"ts": 1000.0, "idle_s": 42.0, "foreground": "EasiNote.exe"}
    assert set(json.loads(Path(path).read_text())) == {"ts", "idle_s", "foreground"}  # nothing else
    src = idle.SessionFileSource(path, max_age_s=90, wall=lambda: 1030.0)
    assert (src.idle_seconds(), src.foreground()) == (42.0, "EasiNote.exe")
    stale = idle.SessionFileSource(path, max_age_s=90, wall=lambda: 2000.0)  # the helper stopped (logged off)
    assert stale.idle_seconds() is None and stale.foreground() is None
    # on Windows the helper also counts displays: the service (session 0) cannot
    from agent.probes.faults import SessionDisplaySource

    write_state(path, fake, wall=lambda: 1000.0, displays=lambda: 0)
    assert SessionDisplaySource(path, wall=lambda: 1010.0).count() == 0
    assert SessionDisplaySource(path, wall=lambda: 5000.0).count() is None  # nobody logged in: unknown


def test_the_helpers_file_is_used_once_it_appears_without_a_restart(tmp_path: Path) -> None:
    """Right after the install nobody has logged on since: logind answers until the helper writes."""
    path = str(tmp_path / "session.json")
    logind = FakeIdle()
    logind.idle, logind.fg = 600.0, None
    now = [1000.0]
    src = idle.HelperFirstSource(idle.SessionFileSource(path, max_age_s=90, wall=lambda: now[0]), logind)
    assert src.sample() == (600.0, None)  # no helper yet
    helper = FakeIdle()
    helper.idle, helper.fg = 3.0, "EasiNote.exe"
    write_state(path, helper, wall=lambda: now[0])
    assert src.sample() == (3.0, "EasiNote.exe")  # the helper's answer, with the program in front
    now[0] = 2000.0  # the helper stopped (logged off): logind again
    assert (src.idle_seconds(), src.foreground()) == (600.0, None)


class Key:
    def __init__(self, values: dict[str, Any], subkeys: dict[str, Key] | None = None) -> None:
        self.values, self.subkeys = values, subkeys or {}

    def __enter__(self) -> Key:
        return self

    def __exit__(self, *a: Any) -> None:
        pass


class WinReg:
    """The winreg functions the agent uses, over a dict tree."""
    HKEY_LOCAL_MACHINE, HKEY_CURRENT_USER, KEY_SET_VALUE, REG_SZ = "HKLM", "HKCU", 2, 1

    def __init__(self, tree: dict[str, Key]) -> None:
        self.tree = tree
        self.set: dict[str, Any] = {}

    def OpenKey(self, parent: Any, path: str, *a: Any) -> Key:  # noqa: N802
        key = self.tree.get(parent + "\\" + path) if isinstance(parent, str) else parent.subkeys.get(path)
        if key is None:
            raise FileNotFoundError(path)
        return key

    def EnumKey(self, key: Key, i: int) -> str:  # noqa: N802
        names = list(key.subkeys)
        if i >= len(names):
            raise OSError("no more")
        return names[i]

    def QueryValueEx(self, key: Key, name: str) -> tuple[Any, int]:  # noqa: N802
        if name not in key.values:
            raise FileNotFoundError(name)
        return key.values[name], 1

    def CreateKeyEx(self, hive: str, path: str, *a: Any) -> Key:  # noqa: N802
        return self.tree.setdefault(hive + "\\" + path, Key({}))

    def SetValueEx(self, key: Key, name: str, res: int, kind: int, value: Any) -> None:  # noqa: N802
        key.values[name] = value

    def DeleteValue(self, key: Key, name: str) -> None:  # noqa: N802
        del key.values[name]

    def CloseKey(self, key: Key) -> None:  # noqa: N802
        pass


def test_windows_installed_software_from_uninstall_keys() -> None:
    apps = Key({}, {"{A}": Key({"DisplayName": "希沃白板 5", "DisplayVersion": "5.2.3", "Publisher": "视源股份"}),
                    "KB123": Key({"DisplayName": "Update for X", "ParentKeyName": "X"}),
                    "hidden": Key({"DisplayName": "Runtime", "SystemComponent": 1}),
                    "nameless": Key({"DisplayVersion": "1"})})
    apps32 = Key({}, {"{B}": Key({"DisplayName": "WPS Office", "DisplayVersion": "11.1"})})
    cpu = Key({"ProcessorNameString": " Intel(R) Core(TM) i5-4590 "})
    reg = WinReg({"HKLM\\" + inventory.UNINSTALL_KEYS[0]: apps, "HKLM\\" + inventory.UNINSTALL_KEYS[1]: apps32,
                  "HKLM\\HARDWARE\\DESCRIPTION\\System\\CentralProcessor\\0": cpu})
    sw = inventory.WindowsSoftware(reg)
    assert sw.packages() == [{"name": "WPS Office", "version": "11.1", "publisher": ""},
                             {"name": "希沃白板 5", "version": "5.2.3", "publisher": "视源股份"}]
    assert sw.cpu() == "Intel(R) Core(TM) i5-4590"


def test_linux_inventory_from_dpkg_split_to_fit_messages(tmp_path: Path) -> None:
    lines = "".join(f"pkg-{i:04d}\t1.{i}-1\tDebian Team <x@debian.org>\n" for i in range(3000))
    sw = inventory.PosixSoftware(lambda args: lines if args[0] == "dpkg-query" else "")
    pkgs = sw.packages()
    assert len(pkgs) == 3000 and pkgs[0] == {"name": "pkg-0000", "version": "1.0-1", "publisher": "Debian Team"}
    ctx = make_ctx(tmp_path)
    probe = inventory.InventoryProbe(software=sw, displays=type("D", (), {"count": lambda self: 1})())
    probe.run(ctx)
    parts = events(ctx, "inventory")
    assert len(parts) > 1 and {p["data"]["parts"] for p in parts} == {len(parts)}
    assert len({p["data"]["inventory_id"] for p in parts}) == 1
    assert sum(len(p["data"]["software"]) for p in parts) == 3000
    assert all(len(json.dumps(p, ensure_ascii=False).encode()) < 60 * 1024 for p in parts)
    first = parts[0]["data"]
    assert first["ram_mb"] > 0 and first["displays"] == 1 and first["cpu"] and isinstance(first["disks"], list)
    rpm = inventory.PosixSoftware(lambda a: "bash\t5.1-2\tKylin\n" if a[0] == "rpm" else "")
    assert rpm.packages() == [{"name": "bash", "version": "5.1-2", "publisher": "Kylin"}]


def test_usb_storage_linux_sysfs_and_windows_drives(tmp_path: Path) -> None:
    real = tmp_path / "devices" / "pci0000:00" / "usb1" / "1-1" / "block" / "sdb"
    real.mkdir(parents=True)
    (real / "size").write_text("15728640\n")  # 512-byte sectors: 7680 MB
    disk = tmp_path / "devices" / "pci0000:00" / "ata1" / "block" / "sda"
    disk.mkdir(parents=True)
    (disk / "size").write_text("1000\n")
    block = tmp_path / "block"
    block.mkdir()
    os.symlink(real, block / "sdb")
    os.symlink(disk, block / "sda")
    labels = tmp_path / "by-label"
    labels.mkdir()
    os.symlink("../../sdb1", labels / "U\\xe7\\x9b\\x98")
    src = usb.SysfsUsbSource(str(block), str(labels))
    ctx = make_ctx(tmp_path)
    probe = usb.UsbProbe(src)
    probe.setup(ctx)
    os.unlink(block / "sdb")
    probe.run(ctx)
    probe.close()  # (its socket on the kernel's device events)
    got = [(e["data"]["action"], e["data"]["label"], e["data"]["size_mb"]) for e in events(ctx, "usb")]
    assert got == [("inserted", "U盘", 7680), ("removed", "U盘", 7680)]

    class K32:
        def GetLogicalDrives(self) -> int:  # noqa: N802
            return 0b10100  # C: and E:

        def GetDriveTypeW(self, root: str) -> int:  # noqa: N802
            return 2 if root == "E:\\" else 3

        def GetVolumeInformationW(self, root: str, buf: Any, *a: Any) -> int:  # noqa: N802
            buf.value = "KINGSTON"
            return 1

        def GetDiskFreeSpaceExW(self, root: str, free: Any, total: Any, tfree: Any) -> int:  # noqa: N802
            total._obj.value = 16 * 2 ** 30
            return 1

    assert usb.WindowsUsbSource(K32()).drives() == {"E:\\": {"label": "KINGSTON", "size_mb": 16384}}


def test_windows_workgroup_and_notice() -> None:
    class NetApi:
        def NetGetJoinInformation(self, server: Any, name: Any, status: Any) -> int:  # noqa: N802
            name._obj.value = "SCHOOL-WG"
            status._obj.value = 2
            return 0

    assert WorkgroupSource(NetApi()).get() == "SCHOOL-WG"
    sent: list[tuple[Any, ...]] = []

    class Wts:
        def WTSSendMessageW(self, *args: Any) -> int:  # noqa: N802
            sent.append(args)
            return 1

    WindowsDesktop(Wts(), type("K", (), {"WTSGetActiveConsoleSessionId": lambda self: 1})()).notify("下课了", 20)
    assert sent[0][1] == 1 and sent[0][4] == "下课了" and sent[0][7] == 20
    nobody = WindowsDesktop(Wts(), type("K", (), {"WTSGetActiveConsoleSessionId": lambda self: 0xFFFFFFFF})())
    nobody.notify("x")
    assert len(sent) == 1
    spawned: list[list[str]] = []
    WindowsDesktop(Wts(), Kernel32(0), spawn=spawned.append).power_off()
    assert spawned == [["shutdown", "/s", "/f", "/t", "0"]]


def test_systemd_unit_install_and_uninstall(tmp_path: Path) -> None:
    ini = tmp_path / "agent.ini"
    ini.write_text("[agent]\nschool = s1\n")
    ran: list[list[str]] = []
    inst = install.SystemdInstaller(str(ini), str(tmp_path / "data"), unit_dir=str(tmp_path / "units"),
                                    autostart_dir=str(tmp_path / "autostart"), python="/opt/bbt/bin/python",
                                    run=ran.append)
    inst.install()
    unit = (tmp_path / "units" / "bbt-agent.service").read_text()
    assert f"ExecStart=/opt/bbt/bin/python -m agent --config {ini}" in unit
    assert "Restart=always" in unit and "WantedBy=multi-user.target" in unit
    helper = (tmp_path / "autostart" / "bbt-agent-helper.desktop").read_text()
    assert "-m agent helper --data-dir %s" % (tmp_path / "data") in helper
    assert ran == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "bbt-agent.service"]]
    assert oct((tmp_path / "data" / "session").stat().st_mode & 0o7777) == "0o1777"
    inst.uninstall()
    assert not (tmp_path / "units" / "bbt-agent.service").exists()
    assert ran[-2:] == [["systemctl", "disable", "--now", "bbt-agent.service"], ["systemctl", "daemon-reload"]]


def test_windows_service_install_restarts_on_failure(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    reg = WinReg({})
    exe = r"C:\Program Files\bbt\bbt-agent.exe"
    inst = install.WindowsInstaller(r"C:\ProgramData\bbt\agent.ini", str(tmp_path / "data"), exe=exe,
                                    run=ran.append, winreg=reg)
    inst.install()
    assert ran[0][:4] == ["sc", "create", "bbt-agent", "binPath="] and ran[0][4] == f'"{exe}" service'
    assert ["sc", "failure", "bbt-agent", "reset=", "86400", "actions=",
            "restart/5000/restart/10000/restart/60000"] in ran
    assert ran[-1] == ["sc", "start", "bbt-agent"]
    run_key = reg.tree["HKLM\\" + install.RUN_KEY]
    assert run_key.values["bbt-agent-helper"].startswith(f'"{exe}" helper')
    inst.uninstall()
    assert "bbt-agent-helper" not in run_key.values and ["sc", "delete", "bbt-agent"] in ran


def test_install_cli_writes_the_unit(tmp_path: Path) -> None:
    from tests.helpers import run_bbt

    ini = tmp_path / "agent.ini"
    ini.write_text("[agent]\nschool = s1\ndevice = pc-101\ndata_dir = %s\n" % (tmp_path / "data"))
    r = run_bbt("agent", "install", "--config", str(ini), "--unit-dir", str(tmp_path / "u"),
                "--autostart-dir", str(tmp_path / "a"), "--no-start")
    assert r.returncode == 0, r.stderr
    assert "pc-101" in r.stdout and (tmp_path / "u" / "bbt-agent.service").exists()
    r = run_bbt("agent", "install", "--config", str(tmp_path / "missing.ini"), "--no-start")
    assert r.returncode != 0 and "missing.ini" in r.stderr and "Traceback" not in r.stderr
