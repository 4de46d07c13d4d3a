"""System load for the heartbeat: CPU %, memory %, system-disk %, uptime (psutil)."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Dict

import psutil

FIELDS = {"cpu_pct": "%", "mem_pct": "%", "disk_pct": "% of the system drive", "uptime_s": "s"}


def system_drive() -> str:
    if sys.platform == "win32":
        return os.environ.get("SystemDrive", "C:") + "\\"
    return "/"


def uptime() -> float:
    """Seconds since boot, suspend included (Linux: one clock read instead of parsing /proc/stat)."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.time() - psutil.boot_time()


def read() -> Dict[str, Any]:
    return {
        "cpu_pct": round(psutil.cpu_percent(interval=None), 1),
        "mem_pct": round(psutil.virtual_memory().percent, 1),
        "disk_pct": round(psutil.disk_usage(system_drive()).percent, 1),
        "uptime_s": int(uptime()),
    }


def boot_time() -> float:
    return float(psutil.boot_time())
