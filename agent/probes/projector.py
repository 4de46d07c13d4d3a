"""The classroom's projector or panel over PJLink (agent.probes.pjlink): power, input, lamp hours, errors.

Its address comes from agent.ini (``projector``) or from the school's policy (``projectors``:
{device: "host[:port]"}, filled by the collector from the devices import); the password from
agent.ini (``projector_password``). A ``projector`` event goes out when something changed and at
least every ``projector_report_s`` (so the collector's lamp hours stay fresh); nothing at all when
this PC has no projector.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from agent.probes import Probe, pjlink

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)
CHANGES = ("reachable", "power", "input", "errors", "error")


def projector_address(ctx: "Context") -> str:
    """agent.ini's ``projector`` first, else this device's entry in the policy's ``projectors``."""
    if ctx.cfg.projector:
        return str(ctx.cfg.projector)
    table = ctx.raw_policy.get("projectors")
    if isinstance(table, dict):
        value = table.get(ctx.cfg.device)
        if isinstance(value, str):
            return value
    return ""


def worth_reporting(last: Optional[Dict[str, Any]], new: Dict[str, Any], last_t: float, now: float,
                    every_s: float) -> bool:
    if last is None or now - last_t >= every_s:
        return True
    return any(last.get(k) != new.get(k) for k in CHANGES + ("address",))


class ProjectorProbe(Probe):
    name = "projector"
    period = "projector_s"
    emits = ("projector",)
    fields = {"address": "host[:port] polled", "reachable": "bool: it answered PJLink",
              "power": "off / on / cooling / warming / unknown", "input": "e.g. DIGITAL 1 (INPT)",
              "lamp_hours": "hours of the first lamp (LAMP)", "errors": "{part: warning|error} from ERST",
              "error": "why it could not be read"}
    rerun_on_policy = True  # a new policy may bring this PC's projector address

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.last: Optional[Dict[str, Any]] = None
        self.last_t = 0.0

    def run(self, ctx: "Context") -> None:
        address = projector_address(ctx)
        if not address:
            return
        state = pjlink.query(address, ctx.cfg.projector_password or "", float(ctx.cfg.projector_timeout_s))
        now = self.clock()
        if worth_reporting(self.last, state, self.last_t, now, float(ctx.cfg.projector_report_s)):
            ctx.emit("projector", state)
            self.last, self.last_t = state, now


def off_with_pc(ctx: "Context") -> bool:
    """End of day: switch the projector off before the PC when the policy's ``projector_off_with_pc``
    says so. True when a ``POWR 0`` was accepted; a projector that cannot be reached is only logged."""
    address = projector_address(ctx)
    if not address or not ctx.raw_policy.get("projector_off_with_pc"):
        return False
    try:
        pjlink.power_off(address, ctx.cfg.projector_password or "", float(ctx.cfg.projector_timeout_s))
    except (OSError, ValueError, pjlink.PJLinkError) as e:
        log.warning("projector %s not switched off: %s", address, e)
        return False
    ctx.emit("projector", {"address": address, "reachable": True, "power": "cooling"})
    return True
