"""The PC's hardware identity for the asset ledger (issue 18): maker, model, BIOS serial and board.

Sent as extra keys of the ``inventory`` event's first part (protocol.md §1 keeps extra keys;
docs/agent-data-sheet.md lists them). A value that cannot be read is null: on Linux the serials
under /sys/class/dmi/id are readable by root only, so an agent running as a user reports the
maker and model and null serials (the collector never takes null for a change of machine).

* Linux: ``/sys/class/dmi/id/{sys_vendor,product_name,product_serial,board_vendor,board_name,board_serial}``
  (:class:`LinuxDmi`, whose root directory tests point at a fake tree).
* Windows: WMI ``Win32_BIOS.SerialNumber``, ``Win32_ComputerSystem.Manufacturer/Model`` and
  ``Win32_BaseBoard.Manufacturer/Product/SerialNumber`` (:class:`WindowsWmi` over a small query
  interface: pywin32's COM client by default, a fake in tests).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, List, Optional

KEYS = ("sys_vendor", "sys_model", "sys_serial", "board_vendor", "board_model", "board_serial")
FIELDS = {"sys_vendor": "maker of the PC (null: unreadable)", "sys_model": "model of the PC",
          "sys_serial": "BIOS / product serial number (null: unreadable, e.g. Linux without root)",
          "board_vendor": "mainboard maker", "board_model": "mainboard product",
          "board_serial": "mainboard serial number (null: unreadable)"}
DMI_FILES = {"sys_vendor": "sys_vendor", "sys_model": "product_name", "sys_serial": "product_serial",
             "board_vendor": "board_vendor", "board_model": "board_name", "board_serial": "board_serial"}
# inventory key -> (WMI class, property)
WMI_PROPS = {"sys_vendor": ("Win32_ComputerSystem", "Manufacturer"), "sys_model": ("Win32_ComputerSystem", "Model"),
             "sys_serial": ("Win32_BIOS", "SerialNumber"), "board_vendor": ("Win32_BaseBoard", "Manufacturer"),
             "board_model": ("Win32_BaseBoard", "Product"), "board_serial": ("Win32_BaseBoard", "SerialNumber")}

Identity = Dict[str, Optional[str]]
WmiQuery = Callable[[str, List[str]], List[Dict[str, Any]]]  # (class, properties) -> instances


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    s = str(value).strip().strip("\x00").strip()
    return s[:128] or None


class LinuxDmi:
    """Reads the DMI identity from sysfs below ``root`` (``/`` on a real PC)."""

    def __init__(self, root: str = "/") -> None:
        self.dir = os.path.join(root, "sys", "class", "dmi", "id")

    def read(self) -> Identity:
        out: Identity = {}
        for key, name in DMI_FILES.items():
            try:
                with open(os.path.join(self.dir, name), encoding="utf-8", errors="replace") as f:
                    out[key] = _text(f.read())
            except OSError:  # PermissionError for the serials without root; no DMI on some ARM boards
                out[key] = None
        return out


def pywin32_query(cls: str, props: List[str]) -> List[Dict[str, Any]]:  # pragma: no cover - needs Windows
    """WMI through pywin32's COM client (root\\cimv2)."""
    import win32com.client  # type: ignore[import-not-found,import-untyped,unused-ignore]

    svc = win32com.client.GetObject("winmgmts:\\\\.\\root\\cimv2")
    return [{p: getattr(obj, p, None) for p in props}
            for obj in svc.ExecQuery("SELECT %s FROM %s" % (", ".join(props), cls))]


class WindowsWmi:
    """Reads the identity through WMI; ``query`` is the OS boundary (a fake in tests)."""

    def __init__(self, query: Optional[WmiQuery] = None) -> None:
        self.query = query or pywin32_query

    def read(self) -> Identity:
        wanted: Dict[str, List[str]] = {}
        for cls, prop in WMI_PROPS.values():
            wanted.setdefault(cls, []).append(prop)
        found: Dict[str, Dict[str, Any]] = {}
        for cls, props in wanted.items():
            try:
                rows = self.query(cls, props)
            except Exception:  # noqa: BLE001 - WMI broken or the service stopped: report nulls
                rows = []
            found[cls] = rows[0] if rows else {}
        return {key: _text(found[cls].get(prop)) for key, (cls, prop) in WMI_PROPS.items()}


def default_source() -> Any:
    return WindowsWmi() if sys.platform == "win32" else LinuxDmi()
