"""USB storage inserted/removed: the volume label and size only (never file names or contents)."""
from __future__ import annotations

import errno
import logging
import os
import re
import socket
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import protocol
from agent.probes import Probe
from agent.probes.usbblock import UsbBlocker, default_blocker

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)

Drives = Dict[str, Dict[str, Any]]  # key -> {"label", "size_mb"}
NETLINK_KOBJECT_UEVENT = 15
EVENT_PERIOD_S = 300.0  # with the kernel's device events, still look this often (an event missed)
SETTLE_S = 2.0  # after a block device event, udev names the volume (/dev/disk/by-label) within this


def open_uevents(uid_map: str = "/proc/self/uid_map") -> Optional[socket.socket]:
    """Linux: a socket on the kernel's device events (uevents, any user may listen), or None. Only
    in the initial user namespace: in a container the kernel may not send them there."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open(uid_map, encoding="ascii") as f:
            if f.read().split() != ["0", "0", "4294967295"]:
                return None
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)
    except (OSError, AttributeError):
        return None
    try:
        sock.bind((0, 1))  # multicast group 1: the kernel's own events
        sock.setblocking(False)
    except OSError:
        sock.close()
        return None
    return sock


def block_changed(sock: socket.socket) -> bool:
    """Read every waiting device event; True when one was about a block device (or some were lost)."""
    changed = False
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return changed
        except OSError as e:  # ENOBUFS: events lost, so maybe ours
            if e.errno != errno.ENOBUFS:
                log.warning("device events: %s", e)
            return True
        changed = changed or b"\0SUBSYSTEM=block\0" in data


class UsbSource:
    def drives(self) -> Drives:
        return {}

    def device_path(self, key: str) -> Optional[str]:
        """Where the OS describes this drive (Linux: its /sys directory), for blocking it."""
        return None


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
            out[dev] = dict({"label": label, "size_mb": sectors * 512 // 2 ** 20}, **self._ids(dev))
        return out

    def device_path(self, key: str) -> Optional[str]:
        return os.path.realpath(os.path.join(self.sys_block, key))

    def _ids(self, dev: str) -> Dict[str, str]:
        """The USB device's idVendor and idProduct: in the first directory above the block device that
        has them (/sys/devices/.../usb1/1-1/idVendor)."""
        path = os.path.realpath(os.path.join(self.sys_block, dev))
        while "/usb" in path:
            try:
                with open(os.path.join(path, "idVendor"), encoding="ascii") as v, \
                        open(os.path.join(path, "idProduct"), encoding="ascii") as p:
                    return {"vendor_id": v.read().strip().lower(), "product_id": p.read().strip().lower()}
            except OSError:
                path = os.path.dirname(path)
        return {}

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


def _ids_of(drive: Dict[str, Any]) -> Dict[str, str]:
    return {k: drive[k] for k in ("vendor_id", "product_id") if isinstance(drive.get(k), str)}


def default_source() -> UsbSource:
    return WindowsUsbSource() if sys.platform == "win32" else SysfsUsbSource()


class UsbProbe(Probe):
    name = "usb"
    period = "usb_s"
    emits = ("usb",)
    fields = {"action": "inserted / removed", "kind": "storage", "label": "volume label",
              "size_mb": "size of the medium in MB", "vendor_id": "USB vendor id (Linux, 4 hex digits)",
              "product_id": "USB product id (Linux, 4 hex digits)"}

    settle_s = SETTLE_S

    rerun_on_policy = True  # the policy's usb.block switch (Windows) applies at once

    def __init__(self, source: Optional[UsbSource] = None,
                 uevents: Optional[Callable[[], Optional[socket.socket]]] = None,
                 blocker: Optional[UsbBlocker] = None) -> None:
        self.source = source or default_source()
        self.blocker = blocker
        self._switch: Optional[bool] = None  # the block switch as last applied
        self._last: Optional[Drives] = None  # what the outbox remembers, read once
        if uevents is None:  # the kernel's device events where /sys/block is what is read
            uevents = open_uevents if isinstance(self.source, SysfsUsbSource) else (lambda: None)
        self._open_uevents = uevents
        self.events: Optional[socket.socket] = None

    def setup(self, ctx: "Context") -> None:
        self.events = self._open_uevents()
        self.run(ctx)

    def interval(self, ctx: "Context") -> Optional[float]:
        """usb_s; with the kernel's device events (which wake the check) EVENT_PERIOD_S, a safety net."""
        base = super().interval(ctx)
        return max(base, EVENT_PERIOD_S) if base and self.events is not None else base

    def waker(self) -> Optional[Any]:
        return self.events

    def wanted(self) -> bool:
        return self.events is None or block_changed(self.events)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()
            self.events = None

    def run(self, ctx: "Context") -> None:
        if self.events is not None:
            block_changed(self.events)  # this run covers what waits
        now = self.source.drives()
        if self._last is None:
            self._last = ctx.get_state("usb", {}) or {}
        last = self._last
        usb_policy = ctx.policy.get("usb") or protocol.DEFAULT_USB
        self._apply_switch(ctx, bool(usb_policy.get("block")))
        for key in sorted(set(now) - set(last)):
            extra = self._block(key, now[key], usb_policy) if usb_policy.get("block") else {}
            ctx.emit("usb", dict({"action": "inserted", "kind": "storage"}, **now[key], **extra))
        for key in sorted(set(last) - set(now)):
            ctx.emit("usb", dict({"action": "removed", "kind": "storage", "label": last[key].get("label", ""),
                                  "size_mb": last[key].get("size_mb", 0)}, **_ids_of(last[key])))
        if now != last:
            ctx.set_state("usb", now)
            self._last = now

    def _blocker(self) -> UsbBlocker:
        if self.blocker is None:
            self.blocker = default_blocker()
        return self.blocker

    def _apply_switch(self, ctx: "Context", block: bool) -> None:
        """The machine-wide switch (Windows USBSTOR), set when the policy's ``block`` changes; a failure
        is the fault ``usb_block_failed`` until it works."""
        if self._switch is None:
            self._switch = ctx.get_state("usb_block", False)
        if self._switch == block:
            return
        try:
            done = self._blocker().set_policy(block)
        except Exception as e:
            ctx.faults.raise_("usb_block_failed", "warning", "USB storage switch not set: %s: %s"
                              % (type(e).__name__, str(e)[:200]))
            return
        if done:
            log.info("usb policy applied: %s", done)
        ctx.faults.clear("usb_block_failed", "USB storage switch set")
        ctx.set_state("usb_block", block)
        self._switch = block

    def _block(self, key: str, drive: Dict[str, Any], usb_policy: Dict[str, Any]) -> Dict[str, Any]:
        """A new drive under a blocking policy: de-authorized unless allowed; the event says what happened."""
        if protocol.usb_allowed(usb_policy, str(drive.get("label") or ""), str(drive.get("vendor_id") or ""),
                                str(drive.get("product_id") or "")):
            return {}
        path = self.source.device_path(key)
        if path is None:
            return {}  # Windows: the USBSTOR switch does it
        try:
            done = self._blocker().block_device(path)
        except OSError as e:
            return {"blocked": False, "block_error": "%s: %s" % (type(e).__name__, str(e)[:200])}
        return {"blocked": done} if done else {"blocked": False, "block_error": "no USB device above " + path}
