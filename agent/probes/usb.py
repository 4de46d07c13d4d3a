"""USB storage inserted/removed: the volume label and size only (never file names or contents)."""
from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any, Dict, Optional

from agent.probes import Probe

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

Drives = Dict[str, Dict[str, Any]]  # key -> {"label", "size_mb"}


class UsbSource:
    def drives(self) -> Drives:
        return {}


class SysfsUsbSource(UsbSource):
    """Linux: block devices under a USB bus (/sys/block/*), labels from /dev/disk/by-label."""

    def __init__(self, sys_block: str = "/sys/block", by_label: str = "/dev/disk/by-label") -> None:
        self.sys_block, self.by_label = sys_block, by_label
        self._on_usb: Dict[str, bool] = {}  # device name -> sits on a USB bus (resolved once per name)

    def _is_usb(self, dev: str) -> bool:
        if dev not in self._on_usb:
            self._on_usb[dev] = "/usb" in os.path.realpath(os.path.join(self.sys_block, dev))
        return self._on_usb[dev]

    def drives(self) -> Drives:
        out: Drives = {}
        try:
            names = os.listdir(self.sys_block)
        except OSError:
            return out
        for gone in set(self._on_usb) - set(names):
            del self._on_usb[gone]
        usb = [dev for dev in names if self._is_usb(dev)]
        labels = self._labels() if usb else {}
        for dev in usb:
            try:
                with open(os.path.join(self.sys_block, dev, "size"), encoding="ascii") as f:
                    sectors = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if sectors == 0:
                continue  # a card reader with no card
            label = next((lab for part, lab in labels.items() if part.startswith(dev)), "")
            out[dev] = {"label": label, "size_mb": sectors * 512 // 2 ** 20}
        return out

    def _labels(self) -> Dict[str, str]:
        try:
            entries = os.listdir(self.by_label)
        except OSError:
            return {}
        out = {}
        for e in entries:
            target = os.path.basename(os.readlink(os.path.join(self.by_label, e)))
            out[target] = unescape_udev(e)
        return out


def unescape_udev(name: str) -> str:
    """udev writes unsafe bytes of a label as \\xNN (of its UTF-8 form): 'U\\xe7\\x9b\\x98' -> 'U盘'."""
    raw = re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), name)
    return raw.encode("latin-1", "ignore").decode("utf-8", "replace")


class WindowsUsbSource(UsbSource):
    """Windows: drive letters of type DRIVE_REMOVABLE, with volume label and size (kernel32)."""

    DRIVE_REMOVABLE = 2

    def __init__(self, kernel32: Any = None) -> None:
        if kernel32 is None:
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        self.k32 = kernel32

    def drives(self) -> Drives:
        import ctypes

        out: Drives = {}
        mask = int(self.k32.GetLogicalDrives())
        for i in range(26):
            if not mask & (1 << i):
                continue
            root = "%s:\\" % chr(65 + i)
            if int(self.k32.GetDriveTypeW(root)) != self.DRIVE_REMOVABLE:
                continue
            label = ctypes.create_unicode_buffer(261)
            if not self.k32.GetVolumeInformationW(root, label, 261, None, None, None, None, 0):
                continue  # no medium
            total = ctypes.c_ulonglong(0)
            self.k32.GetDiskFreeSpaceExW(root, None, ctypes.byref(total), None)
            out[root] = {"label": label.value, "size_mb": int(total.value) // 2 ** 20}
        return out


def default_source() -> UsbSource:
    return WindowsUsbSource() if sys.platform == "win32" else SysfsUsbSource()


class UsbProbe(Probe):
    name = "usb"
    period = "usb_s"
    emits = ("usb",)
    fields = {"action": "inserted / removed", "kind": "storage", "label": "volume label",
              "size_mb": "size of the medium in MB"}

    def __init__(self, source: Optional[UsbSource] = None) -> None:
        self.source = source or default_source()
        self._last: Optional[Drives] = None  # what the outbox remembers, read once

    def setup(self, ctx: "Context") -> None:
        self.run(ctx)

    def run(self, ctx: "Context") -> None:
        now = self.source.drives()
        if self._last is None:
            self._last = ctx.get_state("usb", {}) or {}
        last = self._last
        for key in sorted(set(now) - set(last)):
            ctx.emit("usb", {"action": "inserted", "kind": "storage", "label": now[key]["label"],
                             "size_mb": now[key]["size_mb"]})
        for key in sorted(set(last) - set(now)):
            ctx.emit("usb", {"action": "removed", "kind": "storage", "label": last[key].get("label", ""),
                             "size_mb": last[key].get("size_mb", 0)})
        if now != last:
            ctx.set_state("usb", now)
            self._last = now
