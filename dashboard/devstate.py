"""A device's state on the dashboard (pure functions over registry rows)."""
from __future__ import annotations

from itertools import groupby
from typing import Any

# the order the overview shows them in
STATES = ("in_use", "idle", "off", "offline", "fault")


def device_state(d: dict[str, Any]) -> str:
    """in_use / idle (on, nobody working it) / off (shut down properly) / offline (lost, silent) / fault."""
    if d.get("open_faults"):
        return "fault"
    if not d["online"]:
        return "off" if d.get("status_reason") == "shutdown" else "offline"
    return "in_use" if d["in_use"] else "idle"


def with_states(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for d in devices:
        d["state"] = device_state(d)
    return devices


def counts(devices: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(1 for d in devices if d["state"] == k) for k in STATES}


def by_floor(devices: list[dict[str, Any]]) -> list[tuple[tuple[str, str], list[dict[str, Any]]]]:
    """Devices grouped by (building, floor), in that order; devices without a place come last."""
    def key(d: dict[str, Any]) -> tuple[str, str]:
        return (d.get("building") or "", d.get("floor") or "")
    ordered = sorted(devices, key=lambda d: (key(d) == ("", ""), key(d), d.get("room") or "", d["device"]))
    return [(k, list(v)) for k, v in groupby(ordered, key=key)]


def floor_chart(devices: list[dict[str, Any]]) -> dict[str, Any]:
    """Data for the stacked bar chart 'devices by floor': categories and one series per state."""
    groups = by_floor(devices)
    cats = [" ".join(p for p in k if p) or "?" for k, _ in groups]
    return {"categories": cats,
            "series": {s: [sum(1 for d in devs if d["state"] == s) for _, devs in groups] for s in STATES}}
