"""Probes: one small module per thing measured, all registered in :func:`all_probes`.

A probe declares what it emits (event types and the data fields with their units) and how
often it runs (the name of an :class:`~agent.config.AgentConfig` setting holding its period
in seconds). ``run(ctx)`` looks at the machine and calls ``ctx.emit``. A probe that raises is
logged and skipped by :func:`run_probe`; it never stops the agent.

OS-specific parts (Win32 through ctypes, the registry through winreg, logind, X11, sysfs)
sit behind small source classes that tests replace with fakes.
"""
from __future__ import annotations

import logging
import subprocess
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)


class Probe:
    """Base class. Subclasses set the class attributes and implement :meth:`run`."""

    name = ""
    period: Optional[str] = None  # AgentConfig attribute with the period in seconds; None = on demand
    emits: Tuple[str, ...] = ()
    fields: Dict[str, str] = {}  # data field -> unit / meaning (the data sheet lists these)
    rerun_on_policy = False  # run at once when a new policy arrives
    busy = False  # a probe the OS wakes: its last run found new work (see waker)
    settle_s = 0.0  # a probe the OS wakes runs this long after its socket turns readable (see wanted)

    def interval(self, ctx: "Context") -> Optional[float]:
        """Seconds between runs (the policy may change it), None for a probe run on demand only."""
        return float(ctx.setting(self.period)) if self.period else None

    def setup(self, ctx: "Context") -> None:
        """Runs once when the agent starts (before the first :meth:`run`)."""

    def first_run_s(self, ctx: "Context") -> Optional[float]:
        """Seconds after the start to the first run, for a costly periodic probe that must not hold up
        the start in :meth:`setup`; None: the first run comes one period after the start."""
        return None

    def run(self, ctx: "Context") -> None:
        raise NotImplementedError

    def waker(self) -> Optional[Any]:
        """A socket the OS makes readable when there is something new to look at (the kernel's
        process events), or None: the probe polls on its period. The agent's loop then runs the
        probe when the socket turns readable, and on its period only while ``busy``
        (:class:`agent.ticker.OsEvents`)."""
        return None

    def wanted(self) -> bool:
        """The waker turned readable: whether that asks for a run (a probe may read the socket here
        and answer False for what does not concern it)."""
        return True

    def close(self) -> None:
        """Release what the probe holds open (the agent calls it when it stops)."""


def all_probes() -> List[Probe]:
    """The one place where probes are registered, in start order."""
    from agent.probes import drift, faults, heartbeat, inventory, power, projector, protection, software, usage, usb

    return [power.PowerProbe(), usage.UsageProbe(), heartbeat.HeartbeatProbe(), software.SoftwareProbe(),
            faults.FaultProbe(), drift.DriftProbe(), usb.UsbProbe(), inventory.InventoryProbe(),
            protection.ProtectionProbe(), projector.ProjectorProbe()]


def run_probe(name: str, fn: Callable[..., Any], default: Any = None, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as e:  # a broken probe is skipped, never fatal
        log.warning("probe %s failed: %s: %s", name, type(e).__name__, e)
        return default


def run_command(args: List[str]) -> str:
    """A command's output, or "" when it fails or is missing."""
    try:
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5,
                           universal_newlines=True, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout if r.returncode == 0 else ""
