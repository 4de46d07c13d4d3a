"""Drift: host name, IPv4 address, MAC address, workgroup/domain differ from the last run."""
from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

import psutil

from agent.probes import Probe

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

FIELDS = ("hostname", "ip", "mac", "workgroup")


def primary_interface(target: Tuple[str, int] = ("10.255.255.255", 1)) -> Tuple[str, str]:
    """(IPv4, MAC) of the interface the default route uses; no packet is sent (UDP connect only)."""
    net = primary_network(target)
    return net["ip"], net["mac"]


def primary_network(target: Tuple[str, int] = ("10.255.255.255", 1)) -> Dict[str, str]:
    """``ip``, ``netmask`` and ``mac`` of the interface the default route uses (wake-on-LAN needs the
    subnet and the MAC); empty strings where unknown. No packet is sent (UDP connect only)."""
    ip = ""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(target)
            ip = s.getsockname()[0]
        except OSError:
            pass
    fallback: Dict[str, str] = {}
    for _name, entries in sorted(psutil.net_if_addrs().items()):
        v4 = [a for a in entries if a.family == socket.AF_INET]
        mac = next((a.address for a in entries if a.family == psutil.AF_LINK), "").lower().replace("-", ":")
        for a in v4:
            found = {"ip": a.address, "netmask": a.netmask or "", "mac": mac}
            if ip and a.address == ip:
                return found
            if not fallback and not a.address.startswith("127."):
                fallback = found
    if ip:
        return {"ip": ip, "netmask": "", "mac": fallback.get("mac", "")}
    return fallback or {"ip": "", "netmask": "", "mac": ""}


class WorkgroupSource:
    """Windows: NetGetJoinInformation (workgroup or domain name). Elsewhere: the DNS domain."""

    def __init__(self, netapi32: Any = None) -> None:
        self.netapi32 = netapi32

    def get(self) -> str:
        if sys.platform == "win32" or self.netapi32 is not None:
            return self._windows()
        fqdn = socket.getfqdn()
        return fqdn.split(".", 1)[1] if "." in fqdn else ""

    def _windows(self) -> str:
        import ctypes

        api = self.netapi32 if self.netapi32 is not None else ctypes.windll.netapi32  # type: ignore[attr-defined]
        name = ctypes.c_wchar_p()
        status = ctypes.c_int(0)
        if api.NetGetJoinInformation(None, ctypes.byref(name), ctypes.byref(status)) != 0:
            return ""
        try:
            return str(name.value or "")
        finally:
            if self.netapi32 is None:
                api.NetApiBufferFree(name)


def identity(workgroup: Optional[Callable[[], str]] = None) -> Dict[str, str]:
    ip, mac = primary_interface()
    return {"hostname": socket.gethostname(), "ip": ip, "mac": mac,
            "workgroup": (workgroup or WorkgroupSource().get)()}


class DriftProbe(Probe):
    name = "drift"
    period = "drift_s"
    emits = ("drift",)
    fields = {"field": "hostname / ip / mac / workgroup", "old": "value at the last check", "new": "value now"}

    def __init__(self, read: Callable[[], Dict[str, str]] = identity) -> None:
        self.read = read

    def setup(self, ctx: "Context") -> None:
        self.run(ctx)

    def run(self, ctx: "Context") -> None:
        now = self.read()
        last = ctx.get_state("identity")
        if isinstance(last, dict):
            for f in FIELDS:
                if f in last and now.get(f, "") != last[f] and now.get(f, ""):
                    ctx.emit("drift", {"field": f, "old": last[f], "new": now.get(f, "")})
        ctx.set_state("identity", now)
