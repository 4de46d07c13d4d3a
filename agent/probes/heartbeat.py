"""Heartbeat every ``heartbeat_s`` (policy wins): in use, idle time and system load."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

from agent.probes import Probe, run_probe, system

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context


class HeartbeatProbe(Probe):
    name = "heartbeat"
    period = "heartbeat_s"
    emits = ("heartbeat",)
    fields = dict(system.FIELDS, in_use="bool, from the usage probe", idle_s="seconds since the last input")

    def setup(self, ctx: "Context") -> None:
        run_probe("system", system.read)  # primes psutil's CPU counter: the first heartbeat's cpu_pct is real

    def run(self, ctx: "Context") -> None:
        data: Dict[str, Any] = run_probe("system", system.read, {}) or {}
        data["in_use"] = bool(ctx.in_use)
        if ctx.idle_s is not None:
            data["idle_s"] = int(ctx.idle_s)
        ctx.emit("heartbeat", data)
