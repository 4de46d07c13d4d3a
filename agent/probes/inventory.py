"""Daily inventory: installed software (Windows registry Uninstall keys; Linux dpkg or rpm) and
hardware (CPU, RAM, disks, displays). A long software list is split over several ``inventory``
events (``part``/``parts``, same ``inventory_id``) so that each fits in one MQTT message.
"""
from __future__ import annotations

import json
import platform
import socket
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import psutil

from agent.probes import Probe, hwid, run_command, run_probe
from agent.probes.drift import primary_network
from agent.probes.faults import DisplaySource, default_display_source

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

Package = Dict[str, str]  # {"name", "version", "publisher"}
PART_BYTES = 48 * 1024  # software list bytes per event (the message limit is 64 KiB)
UNINSTALL_KEYS = (r"SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall",
                  r"SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall")


class WindowsSoftware:
    """Installed programs as Add/Remove Programs lists them, read through ``winreg`` (injectable)."""

    def __init__(self, winreg: Any = None) -> None:
        if winreg is None:
            import winreg as _winreg  # type: ignore[import-not-found,unused-ignore]

            winreg = _winreg
        self.reg = winreg

    def _value(self, key: Any, name: str) -> Any:
        try:
            return self.reg.QueryValueEx(key, name)[0]
        except OSError:
            return None

    def packages(self) -> List[Package]:
        seen: Dict[str, Package] = {}
        for hive in (self.reg.HKEY_LOCAL_MACHINE, self.reg.HKEY_CURRENT_USER):
            for path in UNINSTALL_KEYS:
                try:
                    root = self.reg.OpenKey(hive, path)
                except OSError:
                    continue
                with root:
                    i = 0
                    while True:
                        try:
                            sub = self.reg.EnumKey(root, i)
                        except OSError:
                            break
                        i += 1
                        try:
                            key = self.reg.OpenKey(root, sub)
                        except OSError:
                            continue
                        with key:
                            name = self._value(key, "DisplayName")
                            if not name or self._value(key, "SystemComponent") == 1 or \
                                    self._value(key, "ParentKeyName"):
                                continue  # hidden components and updates
                            pkg = {"name": str(name), "version": str(self._value(key, "DisplayVersion") or ""),
                                   "publisher": str(self._value(key, "Publisher") or "")}
                            seen[pkg["name"] + "\0" + pkg["version"]] = pkg
        return sorted(seen.values(), key=lambda p: p["name"].lower())

    def cpu(self) -> str:
        try:
            key = self.reg.OpenKey(self.reg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0")
        except OSError:
            return platform.processor()
        with key:
            return str(self._value(key, "ProcessorNameString") or platform.processor()).strip()


class PosixSoftware:
    """dpkg (Debian, Ubuntu, UOS, Kylin) or rpm; ``run`` is the subprocess boundary."""

    def __init__(self, run: Callable[[List[str]], str] = run_command) -> None:
        self.run = run

    def packages(self) -> List[Package]:
        out = self.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Maintainer}\n"])
        if not out.strip():
            out = self.run(["rpm", "-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{VENDOR}\n"])
        pkgs = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[0]:
                publisher = parts[2].split("<")[0].strip() if len(parts) > 2 else ""
                pkgs.append({"name": parts[0], "version": parts[1], "publisher": publisher})
        return sorted(pkgs, key=lambda p: p["name"].lower())

    def cpu(self) -> str:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.lower().startswith(("model name", "hardware", "cpu model")):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return platform.processor() or platform.machine()


def default_software() -> Any:
    return WindowsSoftware() if sys.platform == "win32" else PosixSoftware()


def hardware(cpu: str, displays: Optional[int]) -> Dict[str, Any]:
    disks = []
    for part in psutil.disk_partitions(all=False):
        if "cdrom" in part.opts or part.fstype in ("squashfs", ""):
            continue
        try:
            size = psutil.disk_usage(part.mountpoint).total
        except OSError:
            continue
        disks.append({"mount": part.mountpoint, "fs": part.fstype, "size_gb": round(size / 1e9, 1)})
    return {"hostname": socket.gethostname(), "os": "%s %s (%s)" % (platform.system(), platform.release(),
                                                                     platform.version()[:80]),
            "cpu": cpu, "cpu_cores": psutil.cpu_count(logical=True) or 0,
            "ram_mb": int(psutil.virtual_memory().total // 2 ** 20), "disks": disks[:32],
            "displays": displays if displays is not None else -1}


def split_software(pkgs: List[Package], part_bytes: int = PART_BYTES) -> List[List[Package]]:
    parts: List[List[Package]] = [[]]
    size = 0
    for p in pkgs:
        p = {k: v[:200] for k, v in p.items()}
        n = len(json.dumps(p, ensure_ascii=False).encode("utf-8")) + 1
        if parts[-1] and size + n > part_bytes:
            parts.append([])
            size = 0
        parts[-1].append(p)
        size += n
    return parts


class InventoryProbe(Probe):
    name = "inventory"
    period = "inventory_h"
    emits = ("inventory",)
    fields = {"hostname": "", "os": "name and version", "cpu": "model", "cpu_cores": "", "ram_mb": "MB",
              "disks": "[{mount, fs, size_gb}]", "displays": "connected displays (-1 unknown)",
              "software": "[{name, version, publisher}] of installed programs",
              "inventory_id": "random id shared by the parts of one inventory", "part": "1..parts",
              "parts": "number of events of this inventory", **hwid.FIELDS,
              "ip": "IPv4 address of the main interface", "netmask": "its subnet mask",
              "mac": "its MAC address (wake-on-LAN)"}

    def __init__(self, software: Any = None, displays: Optional[DisplaySource] = None, identity: Any = None,
                 network: Optional[Callable[[], Dict[str, str]]] = None) -> None:
        self._software = software
        self.displays = displays
        self.identity = identity  # hwid.LinuxDmi / hwid.WindowsWmi
        self.network = network or primary_network

    def interval(self, ctx: "Context") -> Optional[float]:
        return float(ctx.cfg.inventory_h) * 3600

    def setup(self, ctx: "Context") -> None:
        last = float(ctx.get_state("inventory_at", 0) or 0)
        if time.time() - last >= float(self.interval(ctx) or 0):
            self.run(ctx)

    def run(self, ctx: "Context") -> None:
        if self._software is None:
            self._software = default_software()
        if self.displays is None:
            self.displays = default_display_source()
        if self.identity is None:
            self.identity = hwid.default_source()
        sw = self._software
        data = hardware(run_probe("cpu", sw.cpu, ""), run_probe("displays", self.displays.count))
        ident = run_probe("hardware identity", self.identity.read, None) or {}
        data.update({k: ident.get(k) for k in hwid.KEYS})
        data.update(run_probe("network", self.network, None) or {})
        parts = split_software(run_probe("software list", sw.packages, []) or [])
        inv_id = uuid.uuid4().hex[:16]
        for i, chunk in enumerate(parts):
            ev = dict(data) if i == 0 else {"hostname": data["hostname"]}
            ev.update({"software": chunk, "inventory_id": inv_id, "part": i + 1, "parts": len(parts)})
            ctx.emit("inventory", ev)
        ctx.set_state("inventory_at", time.time())
