"""Blocking new USB mass-storage devices where the school's policy says ``"usb": {"block": true}``
(protocol 1.2): the OS boundary, replaced by fakes in tests (never this machine's real settings).

- Windows: the documented switch of the USB mass-storage driver, the registry value
  ``HKLM\\SYSTEM\\CurrentControlSet\\Services\\USBSTOR`` ``Start``: 4 (disabled) while the policy
  blocks, 3 (on demand, the default) otherwise. A stick already plugged in keeps working until it is
  pulled out; every mass-storage device is blocked, teaching kits too (Windows cannot tell them
  apart at this switch), so list nothing in ``allow_ids``/``allow_labels`` and expect them to work.
- Linux: a new USB storage device not on the allow-list is de-authorized (``authorized`` = 0 in its
  /sys/bus/usb/devices/<port> directory, the kernel's USB authorization): the kernel detaches its
  driver and the volume goes away within a couple of seconds of being plugged in.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional

log = logging.getLogger(__name__)
USBSTOR_KEY = r"SYSTEM\CurrentControlSet\Services\USBSTOR"
START_DISABLED, START_ON_DEMAND = 4, 3


class UsbBlocker:
    def set_policy(self, block: bool) -> Optional[str]:
        """Apply the machine-wide switch (Windows); returns what was done, or None when nothing is needed."""
        return None

    def block_device(self, sys_path: str) -> bool:
        """Linux: de-authorize one USB device (its /sys directory); True when done."""
        return False


class WindowsUsbBlocker(UsbBlocker):
    def __init__(self, winreg: Any = None) -> None:
        if winreg is None:
            import winreg as _winreg  # type: ignore[import-not-found,unused-ignore]

            winreg = _winreg
        self.reg = winreg

    def set_policy(self, block: bool) -> Optional[str]:
        want = START_DISABLED if block else START_ON_DEMAND
        key = self.reg.OpenKey(self.reg.HKEY_LOCAL_MACHINE, USBSTOR_KEY, 0,
                               self.reg.KEY_QUERY_VALUE | self.reg.KEY_SET_VALUE)
        try:
            current, _ = self.reg.QueryValueEx(key, "Start")
            if int(current) == want:
                return None
            self.reg.SetValueEx(key, "Start", 0, self.reg.REG_DWORD, want)
        finally:
            self.reg.CloseKey(key)
        return "USBSTOR Start=%d (%s)" % (want, "mass storage blocked" if block else "mass storage allowed")


class SysfsUsbBlocker(UsbBlocker):
    def block_device(self, sys_path: str) -> bool:
        path = sys_path
        while "/usb" in path:  # the USB device above the block device: the one with "authorized"
            if os.path.exists(os.path.join(path, "idVendor")) and os.path.exists(os.path.join(path, "authorized")):
                with open(os.path.join(path, "authorized"), "w", encoding="ascii") as f:
                    f.write("0")
                return True
            path = os.path.dirname(path)
        return False


def default_blocker() -> UsbBlocker:
    return WindowsUsbBlocker() if sys.platform == "win32" else SysfsUsbBlocker()
