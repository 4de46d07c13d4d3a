"""Antivirus and patch state (protocol 1.2 ``protection`` events): what the school rules call
病毒防护 and 安全补丁.

Windows (WMI, read through ``Get-CimInstance`` in PowerShell, one short process per class):
``root\\SecurityCenter2`` ``AntiVirusProduct`` (displayName, productState: enabled and definitions
up to date), ``root\\Microsoft\\Windows\\Defender`` ``MSFT_MpComputerStatus`` (signature age and
date, last quick/full scan), ``MSFT_MpThreatDetection`` and ``MSFT_MpThreat`` (threats not yet
removed) and ``root\\cimv2`` ``Win32_QuickFixEngineering`` (InstalledOn: the last installed update).
Linux: a scanner daemon running (clamd, clamonacc and a few others, from /proc), the ClamAV
signature files' age (/var/lib/clamav/*.cvd|*.cld), and pending security updates where apt can
tell (/usr/lib/update-notifier/apt-check, else ``apt-get -s upgrade`` lines from a -security origin).

Costly (PowerShell, apt), so it runs every ``protection_h`` hours and sends only a change, or the
same state again once a day (the collector then knows it is current).
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Set

import protocol
from agent.probes import Probe, run_probe

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)
REFRESH_S = 86400.0  # the same state is sent again after this long
FIRST_RUN_S = 300.0  # the first look after the agent starts
DAY_S = 86400.0
MAX_NAMES = 10
# Defender threat states that mean "dealt with" (MSFT_MpThreatDetection.ThreatStatusID)
THREAT_DONE = (2, 3, 4, 5, 6)  # cleaned, quarantined, removed, allowed, blocked
# Linux scanner daemons (process name -> product)
LINUX_SCANNERS = {"clamd": "ClamAV", "clamonacc": "ClamAV", "wdavdaemon": "Microsoft Defender for Endpoint",
                  "kesl": "Kaspersky Endpoint Security", "savd": "Sophos", "esets_daemon": "ESET",
                  "oessamd": "ESET", "rtvscand": "Symantec"}


def iso(t: float) -> str:
    return protocol.format_time(datetime.fromtimestamp(int(t), timezone.utc))


# -- Windows -------------------------------------------------------------------------------------

class Cim:
    """Reads WMI classes: ``query(namespace, cls, props, dates)`` -> rows (dates as RFC 3339 strings)."""

    def query(self, namespace: str, cls: str, props: List[str], dates: Sequence[str] = ()) -> List[Dict[str, Any]]:
        raise NotImplementedError


class PowerShellCim(Cim):
    """``Get-CimInstance`` through powershell.exe, output as JSON (no pywin32 needed)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    def query(self, namespace: str, cls: str, props: List[str], dates: Sequence[str] = ()) -> List[Dict[str, Any]]:
        sel = [("@{n='%s';e={if($_.%s){$_.%s.ToUniversalTime().ToString('o')}}}" % (p, p, p)) if p in dates else p
               for p in props]
        script = ("[Console]::OutputEncoding = [Text.Encoding]::UTF8; "  # product names in Chinese
                  "Get-CimInstance -Namespace '%s' -ClassName %s -ErrorAction Stop | Select-Object %s | "
                  "ConvertTo-Json -Compress -Depth 2" % (namespace, cls, ",".join(sel)))
        r = subprocess.run(["powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout, check=False,
                           creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        if r.returncode != 0:
            raise OSError("%s\\%s: %s" % (namespace, cls, r.stderr.decode("utf-8", "replace").strip()[:200]))
        text = r.stdout.decode("utf-8", "replace").strip()
        obj = json.loads(text) if text else []
        return obj if isinstance(obj, list) else [obj]


def product_state(state: int) -> Dict[str, bool]:
    """Security Center's productState: byte 2 0x1_ = real-time scanning on, byte 3 0x00 = definitions
    up to date (0x10 = out of date)."""
    return {"enabled": (state >> 12) & 0xF == 1, "up_to_date": state & 0xFF == 0}


def _time(value: Any) -> Optional[float]:
    """A WMI date as PowerShell's round-trip format writes it ("2026-11-20T03:04:05.1234567Z")."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return protocol.parse_time(value, "wmi time").timestamp()
    except protocol.Rejected:
        return None


def installed_on(value: Any) -> Optional[float]:
    """Win32_QuickFixEngineering.InstalledOn: "11/20/2026" (M/D/YYYY), "20261120", or 16 hex digits
    (a FILETIME, on some old systems); None for anything else."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    m = re.match(r"\A(\d{1,2})/(\d{1,2})/(\d{4})\Z", value)
    try:
        if m:
            return datetime(int(m.group(3)), int(m.group(1)), int(m.group(2)), tzinfo=timezone.utc).timestamp()
        if re.match(r"\A\d{8}\Z", value):
            return datetime(int(value[:4]), int(value[4:6]), int(value[6:]), tzinfo=timezone.utc).timestamp()
        if re.match(r"\A[0-9a-fA-F]{16}\Z", value):
            return int(value, 16) / 1e7 - 11644473600.0
    except ValueError:
        return None
    return None


class WindowsProtection:
    def __init__(self, cim: Optional[Cim] = None) -> None:
        self.cim = cim or PowerShellCim()

    def read(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {}
        products = run_probe("Security Center", self.products, []) or []
        data["products"] = products
        defender = run_probe("Defender status", self.defender, {}) or {}
        data.update(defender)
        data.update(run_probe("Defender threats", self.threats, {}) or {})
        last = run_probe("installed updates", self.last_update)
        if last is not None:
            data["last_update"] = iso(last)
        data["enabled"] = any(p.get("enabled") for p in products) or bool(defender.pop("_rtp", False))
        data.pop("_rtp", None)
        return data

    def products(self) -> List[Dict[str, Any]]:
        rows = self.cim.query("root/SecurityCenter2", "AntiVirusProduct", ["displayName", "productState"])
        return [dict(name=str(r.get("displayName") or "?"), **product_state(int(r.get("productState") or 0)))
                for r in rows]

    def defender(self) -> Dict[str, Any]:
        rows = self.cim.query("root/Microsoft/Windows/Defender", "MSFT_MpComputerStatus",
                              ["AntivirusEnabled", "RealTimeProtectionEnabled", "AntivirusSignatureAge",
                               "AntivirusSignatureLastUpdated", "QuickScanEndTime", "FullScanEndTime"],
                              ["AntivirusSignatureLastUpdated", "QuickScanEndTime", "FullScanEndTime"])
        if not rows:
            return {}
        r = rows[0]
        out: Dict[str, Any] = {"scanner": "Microsoft Defender",
                               "_rtp": bool(r.get("AntivirusEnabled")) and bool(r.get("RealTimeProtectionEnabled"))}
        age = r.get("AntivirusSignatureAge")
        if isinstance(age, (int, float)) and not isinstance(age, bool) and 0 <= age < 65535:
            out["signature_age_d"] = age
        sig = _time(r.get("AntivirusSignatureLastUpdated"))
        if sig is not None:
            out["signatures_t"] = iso(sig)
        scans = [t for t in (_time(r.get("QuickScanEndTime")), _time(r.get("FullScanEndTime"))) if t is not None]
        if scans:
            out["last_scan"] = iso(max(scans))
        return out

    def threats(self) -> Dict[str, Any]:
        rows = self.cim.query("root/Microsoft/Windows/Defender", "MSFT_MpThreatDetection",
                              ["ThreatID", "ThreatStatusID"])
        active = sorted({int(r.get("ThreatID") or 0) for r in rows
                         if int(r.get("ThreatStatusID") or 0) not in THREAT_DONE})
        out: Dict[str, Any] = {"threats": len(active)}
        if active:
            names = {int(t.get("ThreatID") or 0): str(t.get("ThreatName") or "")
                     for t in self.cim.query("root/Microsoft/Windows/Defender", "MSFT_MpThreat",
                                             ["ThreatID", "ThreatName"])}
            out["threat_names"] = [names.get(t) or str(t) for t in active][:MAX_NAMES]
        return out

    def last_update(self) -> Optional[float]:
        rows = self.cim.query("root/cimv2", "Win32_QuickFixEngineering", ["HotFixID", "InstalledOn"])
        times = [t for t in (installed_on(r.get("InstalledOn")) for r in rows) if t is not None]
        return max(times) if times else None


# -- Linux ---------------------------------------------------------------------------------------

def _lowest_priority() -> None:
    os.nice(19)  # apt's few CPU seconds must not slow the lesson


def run_output(args: List[str], timeout: float = 120.0) -> Optional[str]:
    """A command's stdout and stderr, or None when it is missing, fails or takes too long."""
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           universal_newlines=True, check=False, env=dict(os.environ, LC_ALL="C"),
                           preexec_fn=_lowest_priority if hasattr(os, "nice") else None)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def count_security_upgrades(simulated: str) -> int:
    """Upgrades from a -security origin in ``apt-get -s upgrade`` output ("Inst pkg [old] (new
    Debian-Security:12/stable-security [amd64])", "... jammy-security ...")."""
    return sum(1 for line in simulated.splitlines()
               if line.startswith("Inst ") and re.search(r"\([^()]*([-/]security\b|Security)", line))


class LinuxProtection:
    """Everything under ``root`` (a fake tree in tests); commands through ``run``."""

    def __init__(self, root: str = "/", run: Callable[[List[str]], Optional[str]] = run_output) -> None:
        self.root, self.run = root, run

    def _path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def read(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {}
        running = run_probe("scanner processes", self.scanners, set()) or set()
        sig = run_probe("ClamAV signatures", self.clamav_signatures)
        clam = sig is not None or os.path.exists(self._path("usr/bin/clamscan"))
        products = [{"name": "ClamAV", "enabled": "ClamAV" in running}] if clam else []
        products += [{"name": n, "enabled": True} for n in sorted(running - {"ClamAV"})]
        data["products"] = products
        data["enabled"] = bool(running)
        if clam:
            data["scanner"] = "ClamAV"
        if sig is not None:
            data["signatures_t"] = iso(sig)
            data["signature_age_d"] = round(max(0.0, time.time() - sig) / DAY_S, 1)
        pending = run_probe("pending security updates", self.pending_security)
        if pending is not None:
            data["pending_security"] = pending
        return data

    def scanners(self) -> Set[str]:
        found: Set[str] = set()
        for comm in glob.glob(self._path("proc", "[0-9]*", "comm")):
            try:
                with open(comm, encoding="utf-8", errors="replace") as f:
                    name = f.read().strip()
            except OSError:
                continue  # the process ended
            if name in LINUX_SCANNERS:
                found.add(LINUX_SCANNERS[name])
        return found

    def clamav_signatures(self) -> Optional[float]:
        """The newest mtime of ClamAV's signature databases (freshclam rewrites them on an update)."""
        files = [f for ext in ("cvd", "cld") for f in glob.glob(self._path("var/lib/clamav", "*." + ext))]
        return max(os.path.getmtime(f) for f in files) if files else None

    def pending_security(self) -> Optional[int]:
        """Pending security updates: update-notifier's apt-check ("updates;security" on stderr), else
        counted from a simulated upgrade; None where there is no apt."""
        check = self._path("usr/lib/update-notifier/apt-check")
        if os.access(check, os.X_OK):
            out = self.run([check])
            m = re.search(r"(\d+);(\d+)", out or "")
            if m:
                return int(m.group(2))
        if not os.path.exists(self._path("usr/bin/apt-get")):
            return None
        out = self.run(["apt-get", "-s", "-q", "upgrade"])
        return None if out is None else count_security_upgrades(out)


def default_source() -> Any:
    return WindowsProtection() if sys.platform == "win32" else LinuxProtection()


def comparable(data: Dict[str, Any]) -> Dict[str, Any]:
    """What a change is judged on (the signature age grows by itself; its date is kept)."""
    return {k: v for k, v in data.items() if k != "signature_age_d"}


class ProtectionProbe(Probe):
    name = "protection"
    period = "protection_h"
    emits = ("protection",)
    fields = {"enabled": "bool: an antivirus product scans in real time",
              "products": "[{name, enabled, up_to_date}] antivirus products the OS knows",
              "scanner": "the scanner whose signatures are reported (Microsoft Defender, ClamAV)",
              "signatures_t": "time of its signatures (definitions)", "signature_age_d": "their age in days",
              "last_scan": "time of the last quick or full scan (Defender)",
              "threats": "threats detected and not yet removed", "threat_names": "their names (at most 10)",
              "last_update": "time of the last installed update (Windows)",
              "pending_security": "security updates waiting to be installed (apt)",
              "pending_since": "since when security updates have been waiting"}

    def __init__(self, source: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self.clock = clock

    def interval(self, ctx: "Context") -> Optional[float]:
        return float(ctx.cfg.protection_h) * 3600

    def first_run_s(self, ctx: "Context") -> Optional[float]:
        """Not at the start (PowerShell and apt would hold it up, while the PC is busy booting):
        FIRST_RUN_S later when the last look is a period old, else when its period is over."""
        last = ctx.get_state("protection", {}) or {}
        left = float(self.interval(ctx) or 0) - (self.clock() - float(last.get("checked", 0) or 0))
        return max(FIRST_RUN_S, left)

    def run(self, ctx: "Context") -> None:
        if self.source is None:
            self.source = default_source()
        now = self.clock()
        data = self.source.read()
        last = ctx.get_state("protection", {}) or {}
        since = last.get("pending_since")
        if data.get("pending_security"):
            since = since or iso(now)
            data["pending_since"] = since
        else:
            since = None
        key = comparable(data)
        sent = float(last.get("sent", 0) or 0)
        if key != last.get("key") or now - sent >= REFRESH_S:
            ctx.emit("protection", data)
            sent = now
        ctx.set_state("protection", {"key": key, "sent": sent, "checked": now, "pending_since": since})
