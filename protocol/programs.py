"""System programs and the one check that a policy's deny rules cannot hit them (docs/security.md).

Stdlib only, Python 3.8+: the agent (before it applies a policy), ``bbt policy set`` and the
dashboard's policy page all call :func:`unsafe_deny_rules` through ``protocol.validate_policy``.
A deny rule is refused when it matches a program of the operating system or the desktop session
(Windows and Linux, including the Kylin/UOS desktops), the bbt agent itself, or one of a few made-up
programs that no rule aimed at a game or a chat client would match (``*``, ``*.exe``, ``/usr/*``...).
The agent also never terminates these programs, whatever the policy says.
"""
from __future__ import annotations

import fnmatch
from typing import List, NamedTuple, Sequence, Tuple

# (program name, a typical path): a rule is matched against both, as the agent does
WINDOWS_SYSTEM: Tuple[Tuple[str, str], ...] = tuple(
    (n, (d + n).lower()) for d, names in (
        ("c:/windows/system32/", (
            "smss.exe", "csrss.exe", "wininit.exe", "winlogon.exe", "services.exe", "lsass.exe", "lsaiso.exe",
            "svchost.exe", "dwm.exe", "fontdrvhost.exe", "sihost.exe", "taskhostw.exe", "taskhost.exe",
            "taskhostex.exe", "ctfmon.exe", "conhost.exe", "dllhost.exe", "userinit.exe", "logonui.exe",
            "audiodg.exe", "spoolsv.exe", "wudfhost.exe", "runtimebroker.exe", "searchindexer.exe",
            "wlanext.exe", "dashost.exe", "consent.exe", "sppsvc.exe", "msdtc.exe", "wmiprvse.exe",
            "securityhealthservice.exe", "smartscreen.exe", "lsm.exe", "rundll32.exe", "regsvr32.exe",
            "werfault.exe", "wuauclt.exe", "trustedinstaller.exe", "searchprotocolhost.exe",
            "searchfilterhost.exe", "textinputhost.exe", "dwmcore.exe", "system", "registry",
            "memory compression", "secure system", "idle",
        )),
        ("c:/windows/", ("explorer.exe",)),
        ("c:/windows/systemapps/microsoft.windows.shellexperiencehost_cw5n1h2txyewy/", (
            "shellexperiencehost.exe",)),
        ("c:/windows/systemapps/microsoft.windows.startmenuexperiencehost_cw5n1h2txyewy/", (
            "startmenuexperiencehost.exe",)),
        ("c:/windows/systemapps/microsoft.windows.search_cw5n1h2txyewy/", ("searchapp.exe", "searchui.exe",
                                                                           "searchhost.exe")),
        ("c:/program files/windows defender/", ("msmpeng.exe", "nissrv.exe", "mpcmdrun.exe")),
        ("c:/program files/bbt-agent/", ("bbt-agent.exe",)),
    ) for n in names)

LINUX_SYSTEM: Tuple[Tuple[str, str], ...] = tuple(
    (n, d + n) for d, names in (
        ("/usr/lib/systemd/", ("systemd", "systemd-logind", "systemd-journald", "systemd-udevd",
                               "systemd-networkd", "systemd-resolved", "systemd-timesyncd")),
        ("/usr/sbin/", ("init", "sshd", "cron", "rsyslogd", "networkmanager", "lightdm", "sddm", "gdm", "gdm3",
                        "lxdm", "polkitd", "accounts-daemon", "udisksd", "upowerd", "cupsd", "avahi-daemon",
                        "wpa_supplicant", "modemmanager", "agetty", "getty", "login")),
        ("/usr/bin/", ("dbus-daemon", "dbus-broker", "dbus-launch", "xorg", "x", "xwayland", "gnome-shell",
                       "gnome-session", "gnome-session-binary", "kwin", "kwin_x11", "kwin_wayland",
                       "plasmashell", "ksmserver", "kded5", "startplasma-x11", "startplasma-wayland",
                       "xfce4-session", "xfwm4", "xfce4-panel", "xfdesktop", "lxsession", "lxpanel", "openbox",
                       "mutter", "marco", "metacity", "mate-session", "mate-panel", "cinnamon",
                       "cinnamon-session", "ukui-session", "ukui-panel", "ukui-kwin", "ukui-menu",
                       "ukui-settings-daemon", "peony", "peony-qt-desktop", "dde-session", "dde-session-daemon",
                       "dde-desktop", "dde-dock", "dde-launcher", "dde-file-manager", "startdde", "deepin-wm",
                       "kwin_no_scale", "pipewire", "pipewire-pulse", "wireplumber", "pulseaudio",
                       "ibus-daemon", "fcitx", "fcitx5", "at-spi-bus-launcher", "at-spi2-registryd",
                       "xdg-desktop-portal", "xdg-document-portal", "xdg-permission-store", "gvfsd",
                       "polkit-gnome-authentication-agent-1", "gnome-keyring-daemon", "bash", "sh", "dash",
                       "zsh", "sudo", "su", "pkexec", "python", "python3", "python3.8", "python3.9",
                       "python3.10", "python3.11", "python3.12", "python3.13", "bbt-agent")),
        ("/usr/lib/xorg/", ("xorg",)),
        ("/usr/libexec/", ("gdm-session-worker", "gdm-x-session", "gdm-wayland-session", "gsd-xsettings",
                           "gnome-session-binary", "sddm-helper", "lightdm-gtk-greeter")),
    ) for n in names)

SYSTEM_PROGRAMS: Tuple[Tuple[str, str], ...] = WINDOWS_SYSTEM + LINUX_SYSTEM

# Made-up programs in the places programs live: a rule that matches one matches nearly everything.
ANY_PROGRAM: Tuple[Tuple[str, str], ...] = (
    ("zq7x-bbt-probe.exe", "c:/program files/zq7x-bbt-probe/zq7x-bbt-probe.exe"),
    ("zq7x-bbt-probe.exe", "c:/program files (x86)/zq7x-bbt-probe/zq7x-bbt-probe.exe"),
    ("zq7x-bbt-probe.exe", "c:/users/student/appdata/local/zq7x-bbt-probe/zq7x-bbt-probe.exe"),
    ("zq7x-bbt-probe.exe", "d:/zq7x-bbt-probe/zq7x-bbt-probe.exe"),
    ("zq7x-bbt-probe", "/usr/bin/zq7x-bbt-probe"),
    ("zq7x-bbt-probe", "/usr/local/bin/zq7x-bbt-probe"),
    ("zq7x-bbt-probe", "/opt/zq7x-bbt-probe/zq7x-bbt-probe"),
    ("zq7x-bbt-probe", "/home/student/zq7x-bbt-probe"),
)


def norm(path: str) -> str:
    """How rules and paths are compared: '\\' read as '/', lower case."""
    return path.replace("\\", "/").lower()


def glob_hit(glob: str, name: str, exe: str) -> bool:
    """One deny/allow glob against one program: a glob with a path separator against the whole
    executable path, else against the program name and the file name of its executable."""
    g = norm(glob)
    path = norm(exe)
    if "/" in g:
        return fnmatch.fnmatchcase(path, g)
    base = path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(name.lower(), g) or (bool(base) and fnmatch.fnmatchcase(base, g))


def is_system_program(name: str, exe: str = "") -> bool:
    """True for a program of the system list, by name (with or without .exe) or file name."""
    low = name.lower()
    base = norm(exe).rsplit("/", 1)[-1]
    for cand in (low, base):
        if cand and (cand in _SYSTEM_NAMES or cand + ".exe" in _SYSTEM_NAMES):
            return True
    return False


_SYSTEM_NAMES = frozenset(n for n, _ in SYSTEM_PROGRAMS)


class UnsafeRule(NamedTuple):
    rule: str
    hits: str  # the system program it would match, or "" when it matches any program

    def describe(self) -> str:
        if not self.hits:
            return "deny rule %r would match every program" % self.rule
        return "deny rule %r would match the system program %s" % (self.rule, self.hits)


def unsafe_deny_rules(deny: Sequence[str]) -> List[UnsafeRule]:
    """The deny rules that would hit everything or a system program (first such hit each)."""
    out = []
    for rule in deny:
        if any(glob_hit(rule, n, p) for n, p in ANY_PROGRAM):
            out.append(UnsafeRule(rule, ""))
            continue
        by_path = "/" in norm(rule)
        hit = next(((p if by_path else n) for n, p in SYSTEM_PROGRAMS if glob_hit(rule, n, p)), None)
        if hit is not None:
            out.append(UnsafeRule(rule, hit))
    return out
