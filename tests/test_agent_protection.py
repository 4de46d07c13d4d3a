"""Antivirus/patch state and the USB policy on the agent (protocol 1.2), with fakes only at the OS
boundary: WMI rows, a fake filesystem root for ClamAV and apt, a fake registry and a fake /sys."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import protocol
from agent.probes import protection, usb
from agent.probes.usbblock import START_DISABLED, START_ON_DEMAND, USBSTOR_KEY, SysfsUsbBlocker, WindowsUsbBlocker
from agent.trust import report_only
from tests.test_agent_probes import make_ctx

DAY = 86400.0


def outbox_events(ctx: Any, etype: str) -> list[dict[str, Any]]:
    """Every event in the outbox (``peek`` stops at a protection event: it travels alone)."""
    import json

    rows = ctx.outbox._db.execute("SELECT body FROM outbox ORDER BY seq").fetchall()
    return [e for e in (json.loads(b) for (b,) in rows) if e["type"] == etype]


class FakeCim(protection.Cim):
    def __init__(self, rows: dict[str, list[dict[str, Any]]], broken: tuple[str, ...] = ()) -> None:
        self.rows, self.broken = rows, broken
        self.asked: list[tuple[str, str]] = []

    def query(self, namespace: str, cls: str, props: list[str], dates: Any = ()) -> list[dict[str, Any]]:
        self.asked.append((namespace, cls))
        if cls in self.broken:
            raise OSError("Invalid namespace")
        return [{k: r.get(k) for k in props} for r in self.rows.get(cls, [])]


WINDOWS_ROWS: dict[str, list[dict[str, Any]]] = {
    "AntiVirusProduct": [{"displayName": "Windows Defender", "productState": 0x061100},   # on, up to date
                         {"displayName": "360杀毒", "productState": 0x060110}],            # off, out of date
    "MSFT_MpComputerStatus": [{"AntivirusEnabled": True, "RealTimeProtectionEnabled": True,
                               "AntivirusSignatureAge": 9,
                               "AntivirusSignatureLastUpdated": "2026-11-14T02:00:00.1234567Z",
                               "QuickScanEndTime": "2026-11-22T12:30:00.0000000Z", "FullScanEndTime": None}],
    "MSFT_MpThreatDetection": [{"ThreatID": 2147519003, "ThreatStatusID": 1},   # detected, not removed
                               {"ThreatID": 2147735505, "ThreatStatusID": 3}],  # quarantined
    "MSFT_MpThreat": [{"ThreatID": 2147519003, "ThreatName": "Trojan:Win32/Wacatac.B!ml"},
                      {"ThreatID": 2147735505, "ThreatName": "PUA:Win32/Presenoker"}],
    "Win32_QuickFixEngineering": [{"HotFixID": "KB5031356", "InstalledOn": "10/11/2026"},
                                  {"HotFixID": "KB5032189", "InstalledOn": "11/20/2026"},
                                  {"HotFixID": "KB000", "InstalledOn": ""}],
}


def valid(data: dict[str, Any]) -> dict[str, Any]:
    """The data as the collector will check it (protocol 1.2)."""
    ev = protocol.make_event("e1", 0, "protection", protocol.parse_time("2026-11-23T09:00:00+08:00"), data)
    return protocol.validate_event(ev)["data"]


def test_product_state_and_update_dates() -> None:
    assert protection.product_state(0x061100) == {"enabled": True, "up_to_date": True}
    assert protection.product_state(0x060110) == {"enabled": False, "up_to_date": False}
    assert protection.product_state(0x041010) == {"enabled": True, "up_to_date": False}
    assert protection.installed_on("11/20/2026") == protocol.parse_time("2026-11-20T00:00:00Z").timestamp()
    assert protection.installed_on("20261120") == protocol.parse_time("2026-11-20T00:00:00Z").timestamp()
    assert protection.installed_on("01d9cd5ef1c98000") is not None
    assert protection.installed_on("") is None and protection.installed_on(None) is None
    assert protection.installed_on("13/45/2026") is None


def test_windows_security_center_defender_and_updates() -> None:
    cim = FakeCim(WINDOWS_ROWS)
    data = valid(protection.WindowsProtection(cim).read())
    assert data["enabled"] is True
    assert data["products"] == [{"name": "Windows Defender", "enabled": True, "up_to_date": True},
                                {"name": "360杀毒", "enabled": False, "up_to_date": False}]
    assert data["scanner"] == "Microsoft Defender" and data["signature_age_d"] == 9
    assert data["signatures_t"] == "2026-11-14T02:00:00+00:00" and data["last_scan"] == "2026-11-22T12:30:00+00:00"
    assert data["threats"] == 1 and data["threat_names"] == ["Trojan:Win32/Wacatac.B!ml"]
    assert data["last_update"] == "2026-11-20T00:00:00+00:00"
    assert ("root/SecurityCenter2", "AntiVirusProduct") in cim.asked
    assert ("root/Microsoft/Windows/Defender", "MSFT_MpComputerStatus") in cim.asked


def test_windows_without_defender_or_security_center(caplog: pytest.LogCaptureFixture) -> None:
    """Windows Server has no Security Center; a third-party product may switch Defender off: each
    missing part is logged and skipped, the rest still reported."""
    cim = FakeCim(dict(WINDOWS_ROWS, MSFT_MpComputerStatus=[]), broken=("AntiVirusProduct", "MSFT_MpThreatDetection"))
    data = valid(protection.WindowsProtection(cim).read())
    assert data["enabled"] is False and data["products"] == []
    assert "threats" not in data and "signature_age_d" not in data
    assert data["last_update"] == "2026-11-20T00:00:00+00:00"
    assert "probe Security Center failed: OSError" in caplog.text
    assert "probe Defender threats failed" in caplog.text


def fake_root(tmp: Path, procs: list[str], sig_age_d: float | None, apt_check: bool = False,
              apt_get: bool = False) -> Path:
    root = tmp / "root"
    for i, name in enumerate(procs):
        (root / "proc" / str(100 + i)).mkdir(parents=True)
        (root / "proc" / str(100 + i) / "comm").write_text(name + "\n")
    (root / "proc" / "self").mkdir(parents=True, exist_ok=True)
    if sig_age_d is not None:
        (root / "var/lib/clamav").mkdir(parents=True)
        for name, age in (("main.cvd", sig_age_d + 30), ("daily.cld", sig_age_d), ("bytecode.cvd", sig_age_d + 5)):
            f = root / "var/lib/clamav" / name
            f.write_bytes(b"ClamAV-VDB")
            os.utime(f, (time.time() - age * DAY, time.time() - age * DAY))
    if apt_check:
        f = root / "usr/lib/update-notifier/apt-check"
        f.parent.mkdir(parents=True)
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    if apt_get:
        (root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (root / "usr/bin/apt-get").write_text("")
    return root


APT_SIMULATION = """NOTE: This is only a simulation!
Reading package lists...
Inst libssl3 [3.0.11-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.11-1~deb12u1] (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
Inst tzdata [2024a-0+deb12u1] (2024b-0+deb12u1 Debian:12.8/stable [all])
Inst foo-security [1.0] (1.1 Debian:12.8/stable [all])
Inst curl [7.81.0-1ubuntu1.15] (7.81.0-1ubuntu1.16 Ubuntu:22.04/jammy-security [amd64])
Conf libssl3 (3.0.15-1~deb12u1 Debian-Security:12/stable-security [amd64])
"""


def test_linux_clamav_running_and_apt_check(tmp_path: Path) -> None:
    root = fake_root(tmp_path, ["systemd", "clamd", "freshclam"], sig_age_d=2.0, apt_check=True)
    ran: list[list[str]] = []

    def run(args: list[str]) -> str:
        ran.append(args)
        return "17;4"  # apt-check writes "updates;security" (to stderr)

    data = valid(protection.LinuxProtection(str(root), run).read())
    assert data["enabled"] is True and data["scanner"] == "ClamAV"
    assert data["products"] == [{"name": "ClamAV", "enabled": True}]
    assert 1.9 <= data["signature_age_d"] <= 2.1
    assert data["pending_security"] == 4
    assert ran == [[str(root / "usr/lib/update-notifier/apt-check")]]


def test_linux_clamav_installed_not_running_and_apt_simulation(tmp_path: Path) -> None:
    root = fake_root(tmp_path, ["systemd", "freshclam"], sig_age_d=12.0, apt_get=True)
    data = valid(protection.LinuxProtection(str(root), lambda args: APT_SIMULATION).read())
    assert data["enabled"] is False and data["products"] == [{"name": "ClamAV", "enabled": False}]
    assert 11.9 <= data["signature_age_d"] <= 12.1
    assert data["pending_security"] == 3  # two Debian-Security lines, one jammy-security; Conf lines do not count


def test_linux_without_a_scanner_or_apt(tmp_path: Path) -> None:
    root = fake_root(tmp_path, ["systemd", "sshd"], sig_age_d=None)
    data = valid(protection.LinuxProtection(str(root), lambda args: pytest.fail("nothing to run")).read())
    assert data == {"products": [], "enabled": False}


class Source:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data, self.reads = data, 0

    def read(self) -> dict[str, Any]:
        self.reads += 1
        return dict(self.data)


def test_probe_sends_changes_and_a_daily_refresh(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    now = [1_800_000_000.0]
    src = Source({"enabled": True, "signature_age_d": 1, "pending_security": 0})
    probe = protection.ProtectionProbe(src, clock=lambda: now[0])
    assert probe.interval(ctx) == 6 * 3600
    assert probe.first_run_s(ctx) == protection.FIRST_RUN_S  # never looked: 5 minutes after the start
    probe.setup(ctx)
    assert src.reads == 0  # not at the start: PowerShell and apt would hold it up
    probe.run(ctx)
    now[0] += 6 * 3600
    src.data["signature_age_d"] = 1.3  # only the age moved: nothing sent
    probe.run(ctx)
    now[0] += 6 * 3600
    src.data["pending_security"] = 2  # security updates appear
    probe.run(ctx)
    now[0] += 6 * 3600
    probe.run(ctx)  # still waiting: the same since
    now[0] += 19 * 3600  # a day after the last one sent: sent again
    probe.run(ctx)
    now[0] += 1 * 3600
    src.data["pending_security"] = 0
    probe.run(ctx)
    got = [e["data"] for e in outbox_events(ctx, "protection")]
    since = protection.iso(1_800_000_000.0 + 12 * 3600)
    assert [(d.get("pending_security"), d.get("pending_since")) for d in got] == [
        (0, None), (2, since), (2, since), (0, None)]
    assert src.reads == 6
    # a restart: the next look when the period since the last one is over (PowerShell and apt are costly)
    assert protection.ProtectionProbe(src, clock=lambda: now[0] + 3 * 3600).first_run_s(ctx) == 3 * 3600
    assert protection.ProtectionProbe(src, clock=lambda: now[0] + 7 * 3600).first_run_s(ctx) == 300


def test_a_protection_event_travels_alone(tmp_path: Path) -> None:
    """A collector of protocol 1.1 rejects an unknown type: the other events must not share its message."""
    ctx = make_ctx(tmp_path)
    ctx.emit("heartbeat", {"in_use": False})
    ctx.emit("protection", {"enabled": True})
    ctx.emit("heartbeat", {"in_use": True})
    ctx.emit("heartbeat", {"in_use": True})
    batches = []
    while ctx.outbox.pending:
        batch = ctx.outbox.next_batch()
        batches.append([seq for seq, _ in batch])
        ctx.outbox.remove([seq for seq, _ in batch])
    assert batches == [[0], [1], [2, 3]]


# -- USB ------------------------------------------------------------------------------------------

def usb_tree(tmp: Path, vendor: str = "0781", product: str = "5581") -> tuple[Path, Path, Path]:
    dev = tmp / "devices" / "pci0000:00" / "usb1" / "1-1"
    real = dev / "1-1:1.0" / "host6" / "block" / "sdb"
    real.mkdir(parents=True)
    (real / "size").write_text("15728640\n")
    (dev / "idVendor").write_text(vendor + "\n")
    (dev / "idProduct").write_text(product + "\n")
    (dev / "authorized").write_text("1\n")
    block = tmp / "block"
    block.mkdir()
    labels = tmp / "by-label"
    labels.mkdir()
    os.symlink("../../sdb1", labels / "KIT")
    return block, labels, real


def test_usb_ids_from_sysfs_and_linux_block(tmp_path: Path) -> None:
    block, labels, real = usb_tree(tmp_path)
    src = usb.SysfsUsbSource(str(block), str(labels))
    ctx = make_ctx(tmp_path)
    ctx.policy = protocol.validate_policy({"usb": {"allow_labels": ["教学U盘"], "block": True}})
    probe = usb.UsbProbe(src, uevents=lambda: None, blocker=SysfsUsbBlocker())
    probe.setup(ctx)
    os.symlink(real, block / "sdb")
    probe.run(ctx)
    ev = outbox_events(ctx, "usb")[-1]["data"]
    assert ev["vendor_id"] == "0781" and ev["product_id"] == "5581" and ev["label"] == "KIT"
    assert ev["blocked"] is True
    assert (tmp_path / "devices/pci0000:00/usb1/1-1/authorized").read_text() == "0"
    protocol.validate_event(protocol.make_event("u", 1, "usb", protocol.parse_time(
        "2026-11-23T09:00:00+08:00"), ev))


def test_usb_on_the_allow_list_is_not_blocked(tmp_path: Path) -> None:
    block, labels, real = usb_tree(tmp_path)
    ctx = make_ctx(tmp_path)
    ctx.policy = protocol.validate_policy({"usb": {"allow_ids": ["0781:5581"], "block": True}})
    probe = usb.UsbProbe(usb.SysfsUsbSource(str(block), str(labels)), uevents=lambda: None,
                         blocker=SysfsUsbBlocker())
    probe.setup(ctx)
    os.symlink(real, block / "sdb")
    probe.run(ctx)
    ev = outbox_events(ctx, "usb")[-1]["data"]
    assert "blocked" not in ev and (tmp_path / "devices/pci0000:00/usb1/1-1/authorized").read_text() == "1\n"


class FakeWinreg:
    HKEY_LOCAL_MACHINE, KEY_QUERY_VALUE, KEY_SET_VALUE, REG_DWORD = "HKLM", 1, 2, 4

    def __init__(self, start: int = 3, fail: bool = False) -> None:
        self.values = {(USBSTOR_KEY, "Start"): start}
        self.fail = fail

    def OpenKey(self, root: str, path: str, reserved: int, access: int) -> str:  # noqa: N802
        if self.fail:
            raise PermissionError("Access is denied")
        assert root == "HKLM" and access & self.KEY_SET_VALUE
        return path

    def QueryValueEx(self, key: str, name: str) -> tuple[int, int]:  # noqa: N802
        return self.values[(key, name)], self.REG_DWORD

    def SetValueEx(self, key: str, name: str, reserved: int, kind: int, value: int) -> None:  # noqa: N802
        assert kind == self.REG_DWORD
        self.values[(key, name)] = value

    def CloseKey(self, key: str) -> None:  # noqa: N802
        pass


def test_windows_usbstor_switch_follows_the_policy(tmp_path: Path) -> None:
    reg = FakeWinreg()
    ctx = make_ctx(tmp_path)

    class NoDrives(usb.UsbSource):
        pass

    probe = usb.UsbProbe(NoDrives(), blocker=WindowsUsbBlocker(reg))
    probe.setup(ctx)
    assert reg.values[(USBSTOR_KEY, "Start")] == START_ON_DEMAND
    ctx.policy = protocol.validate_policy({"usb": {"block": True}})
    probe.run(ctx)
    assert reg.values[(USBSTOR_KEY, "Start")] == START_DISABLED
    ctx.policy = protocol.validate_policy({})
    probe.run(ctx)
    assert reg.values[(USBSTOR_KEY, "Start")] == START_ON_DEMAND
    # a switch that cannot be set (not run as an administrator) is a fault, raised once
    denied = usb.UsbProbe(NoDrives(), blocker=WindowsUsbBlocker(FakeWinreg(fail=True)))
    ctx.policy = protocol.validate_policy({"usb": {"block": True}})
    denied.run(ctx)
    denied.run(ctx)
    raised = [e["data"] for e in outbox_events(ctx, "fault") if e["data"]["code"] == "usb_block_failed"]
    assert len(raised) == 1 and "Access is denied" in raised[0]["detail"]


def test_an_unsigned_policy_never_blocks_usb() -> None:
    assert report_only({"usb": {"block": True, "allow_ids": []}})["usb"]["block"] is False


@pytest.mark.parametrize("usb_policy, problem", [
    ("no", "policy.usb must be an object"),
    ({"allow": []}, "unknown keys allow"),
    ({"allow_labels": [""]}, "allow_labels must be a list of non-empty"),
    ({"allow_ids": ["0781-5581"]}, "'0781-5581' is not vendor:product"),
    ({"block": "yes"}, "block must be true or false"),
])
def test_usb_policy_validation(usb_policy: Any, problem: str) -> None:
    with pytest.raises(protocol.Rejected, match=problem):
        protocol.validate_policy({"usb": usb_policy})


def test_usb_allow_list_rule() -> None:
    pol = protocol.validate_usb_policy({"allow_labels": ["教学U盘 "], "allow_ids": ["0781:5581"]})
    assert protocol.usb_allowed(pol, "教学u盘")
    assert protocol.usb_allowed(pol, "ANY", "0781", "5581") and protocol.usb_allowed(pol, "", "0781", "5581")
    assert not protocol.usb_allowed(pol, "KINGSTON", "0951", "1666") and not protocol.usb_allowed(pol, "")


def test_an_old_collector_loses_only_the_protection_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a collector of protocol 1.1 makes of a 1.2 agent's messages (its spec has no ``protection``)."""
    ctx = make_ctx(tmp_path)
    for i in range(3):
        ctx.emit("heartbeat", {"in_use": bool(i)})
        ctx.emit("protection", {"enabled": True, "threats": i})
    ctx.emit("usb", {"action": "inserted", "kind": "storage", "label": "KIT", "vendor_id": "0781",
                     "product_id": "5581"})
    monkeypatch.delitem(protocol.v1._SPECS, "protection")
    stored, rejected = [], []
    while ctx.outbox.pending:
        batch = ctx.outbox.next_batch()
        payload = batch[0][1] if len(batch) == 1 else b"[" + b",".join(raw for _, raw in batch) + b"]"
        try:
            stored += [e["type"] for e in protocol.decode_events(payload, "pc-1")]
        except protocol.Rejected as r:
            rejected.append(r.code)
        ctx.outbox.remove([seq for seq, _ in batch])
    assert stored == ["heartbeat", "heartbeat", "heartbeat", "usb"]  # the usb ids are extra keys it keeps
    assert rejected == ["unknown_type"] * 3


def test_the_agent_schedules_the_first_look_after_its_start(tmp_path: Path) -> None:
    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.runner import Agent

    cfg = load_config(None, {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path)}, environ={})
    src = Source({"enabled": True})
    a = Agent(cfg, probes=[protection.ProtectionProbe(src)], desktop=LogDesktop())
    a._start_scheduler()
    try:
        start = a.ticker.clock()
        assert a.ticker.period("protection") == 6 * 3600
        assert a.ticker.due_jobs(start + 299) == [] and src.reads == 0
        assert [j.name for j in a.ticker.due_jobs(start + 301)] == ["protection"]
    finally:
        a.outbox.close()


def test_powershell_cim_builds_the_query_and_reads_its_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    calls: list[list[str]] = []
    answers = [(0, '{"displayName":"360杀毒","productState":397568}'.encode(), b""),
               (0, b'[{"HotFixID":"KB1","InstalledOn":"11/20/2026"},{"HotFixID":"KB2","InstalledOn":""}]', b""),
               (0, b"", b""),
               (1, b"", "Get-CimInstance : 无效命名空间 Invalid namespace".encode())]

    def run(args: list[str], **kw: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append(args)
        code, out, err = answers[len(calls) - 1]
        return subprocess.CompletedProcess(args, code, out, err)

    monkeypatch.setattr(protection.subprocess, "run", run)
    cim = protection.PowerShellCim()
    assert cim.query("root/SecurityCenter2", "AntiVirusProduct", ["displayName", "productState"]) == [
        {"displayName": "360杀毒", "productState": 397568}]
    assert len(cim.query("root/cimv2", "Win32_QuickFixEngineering", ["HotFixID", "InstalledOn"])) == 2
    assert cim.query("root/Microsoft/Windows/Defender", "MSFT_MpThreatDetection", ["ThreatID"]) == []
    with pytest.raises(OSError, match="Invalid namespace"):
        cim.query("root/Microsoft/Windows/Defender", "MSFT_MpComputerStatus", ["AntivirusSignatureLastUpdated"],
                  ["AntivirusSignatureLastUpdated"])
    assert calls[0][:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"]
    assert "Get-CimInstance -Namespace 'root/SecurityCenter2' -ClassName AntiVirusProduct" in calls[0][4]
    assert "Select-Object displayName,productState | ConvertTo-Json" in calls[0][4]
    assert "[Console]::OutputEncoding = [Text.Encoding]::UTF8" in calls[0][4]
    assert ("@{n='AntivirusSignatureLastUpdated';e={if($_.AntivirusSignatureLastUpdated){"
            "$_.AntivirusSignatureLastUpdated.ToUniversalTime().ToString('o')}}}") in calls[3][4]
