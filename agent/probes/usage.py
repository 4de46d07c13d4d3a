"""Usage sessions: every ``usage_s`` seconds decide whether the PC is *in use*.

In use = input within the last ``idle_minutes`` (policy, default 5) or a teaching program
(policy ``teaching_apps`` globs: PowerPoint, WPS, 希沃白板/EasiNote, 鸿合, video players) in the
foreground. Only the foreground program's process name is looked at, never a window title.
A change emits ``session`` start/end; the heartbeat carries ``in_use``.
"""
from __future__ import annotations

import fnmatch
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Optional

import protocol
from agent.probes import Probe
from agent.probes.idle import IdleSource, default_source

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

# used when the policy names no teaching programs
DEFAULT_TEACHING_APPS = [
    "powerpnt*", "wpp*", "wps*", "et.exe", "easinote*", "seewo*", "hitecloud*", "hitecboard*", "honghe*",
    "*whiteboard*", "potplayer*", "vlc*", "wmplayer*", "qqplayer*", "kmplayer*", "mpv*", "totem*",
    "libreoffice*", "soffice*", "evince*", "okular*", "acrord32*", "foxitreader*",
]


def matches(name: Optional[str], globs: Iterable[str]) -> Optional[str]:
    """The first glob matching the program name (case-insensitive), or None."""
    if not name:
        return None
    low = name.lower()
    for g in globs:
        if fnmatch.fnmatchcase(low, g.lower()):
            return g
    return None


def decide_in_use(idle_s: Optional[float], idle_minutes: float, teaching_app: Optional[str]) -> bool:
    return bool(teaching_app) or (idle_s is not None and idle_s < idle_minutes * 60)


def _now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


class UsageProbe(Probe):
    name = "usage"
    period = "usage_s"
    emits = ("session",)
    fields = {"state": "start / end", "session_id": "random id of the session", "start": "time",
              "end": "time", "active_s": "seconds in use",
              "in_use (heartbeat)": "input within idle_minutes or a teaching program in front",
              "idle_s (heartbeat)": "seconds since the last input (not what was input)"}

    def __init__(self, source: Optional[IdleSource] = None) -> None:
        self.source = source
        self.session_id: Optional[str] = None
        self.session_start: Optional[datetime] = None

    def setup(self, ctx: "Context") -> None:
        if self.source is None:
            self.source = default_source(ctx.cfg.data_dir)
        ctx.usage = self  # type: ignore[attr-defined]  # the power probe ends sessions on sleep
        self.run(ctx)

    def run(self, ctx: "Context") -> None:
        assert self.source is not None
        idle, fg = self.source.sample()
        apps = ctx.policy.get("teaching_apps") or DEFAULT_TEACHING_APPS
        teaching = matches(fg, apps)
        in_use = decide_in_use(idle, float(ctx.setting("idle_minutes")), teaching)
        ctx.idle_s, ctx.foreground = idle, (fg if teaching else None)
        if in_use and self.session_id is None:
            self.session_id = uuid.uuid4().hex[:16]
            self.session_start = _now()
            ctx.emit("session", {"state": "start", "session_id": self.session_id})
        elif not in_use and self.session_id is not None:
            self.end_session(ctx)
        ctx.in_use = in_use

    def end_session(self, ctx: "Context", end: Optional[datetime] = None) -> None:
        if self.session_id is None or self.session_start is None:
            return
        end = end or _now()
        if end < self.session_start:
            end = self.session_start
        ctx.emit("session", {"state": "end", "session_id": self.session_id,
                             "start": protocol.format_time(self.session_start), "end": protocol.format_time(end),
                             "active_s": int((end - self.session_start).total_seconds())}, end)
        self.session_id = None
        self.session_start = None
        ctx.in_use = False
