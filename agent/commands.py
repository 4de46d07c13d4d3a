"""Commands from the collector (docs/commands.md): accept, execute, acknowledge on ``cmd/ack``.

:func:`accept` is the one place deciding whether a command may run. The trust area plugs
signature checks and replay rejection in through ``VERIFIERS`` (each raises :class:`Refused`).
"""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

import protocol
from agent.desktop import Desktop

if TYPE_CHECKING:  # pragma: no cover
    from agent.context import Context

log = logging.getLogger(__name__)

SEEN_KEEP = 1000
Verifier = Callable[[Dict[str, Any], bytes], None]
VERIFIERS: List[Verifier] = []  # e.g. signature verification (trust); raise Refused to refuse


class Refused(Exception):
    """The command is not executed; ``str(e)`` goes to the ack's ``error``."""


def now_local() -> datetime:
    return datetime.now(timezone.utc).astimezone()


def accept(payload: bytes, now: datetime, verifiers: Optional[List[Verifier]] = None) -> Dict[str, Any]:
    """Decode and check a command: contract, expiry, every verifier. Returns the validated command."""
    try:
        cmd = protocol.decode_command(payload)
    except protocol.Rejected as r:
        raise Refused(r.message) from None
    if protocol.command_expired(cmd, now):
        raise Refused("expired")
    for verify in (VERIFIERS if verifiers is None else verifiers):
        verify(cmd, payload)
    return cmd


def command_id(payload: bytes) -> Optional[str]:
    """The id of a payload that failed validation, when it has a usable one (to ack the refusal)."""
    try:
        obj = protocol.decode_json(payload)
    except protocol.Rejected:
        return None
    cid = obj.get("id") if isinstance(obj, dict) else None
    return cid if protocol.valid_id(cid) else None


class PendingShutdown:
    """A shutdown after a delay, cancellable; checks ``still_ok`` right before powering off."""

    def __init__(self, desktop: Desktop, delay_s: float, still_ok: Callable[[], bool] = lambda: True,
                 on_done: Callable[[bool], None] = lambda done: None,
                 reminders: Optional[List[Tuple[float, str]]] = None) -> None:
        self.desktop, self.still_ok, self.on_done = desktop, still_ok, on_done
        self.timer = threading.Timer(delay_s, self._fire)
        self.timer.daemon = True
        self.reminders = [threading.Timer(at, self._remind, (text,)) for at, text in (reminders or []) if at > 0]
        for r in self.reminders:
            r.daemon = True
        self.cancelled = False

    def start(self) -> "PendingShutdown":
        self.timer.start()
        for r in self.reminders:
            r.start()
        return self

    def cancel(self) -> None:
        self.cancelled = True
        self.timer.cancel()
        for r in self.reminders:
            r.cancel()

    def _remind(self, text: str) -> None:
        if not self.cancelled:
            self.desktop.notify(text, 30)

    def _fire(self) -> None:
        if self.cancelled:
            return
        ok = self.still_ok()
        if ok:
            self.desktop.power_off()
        self.on_done(ok)


class Commands:
    def __init__(self, ctx: "Context", desktop: Desktop, publish_ack: Callable[[Dict[str, Any]], None],
                 refresh_inventory: Callable[[], None], clock: Callable[[], datetime] = now_local) -> None:
        self.ctx, self.desktop, self.publish_ack = ctx, desktop, publish_ack
        self.refresh_inventory = refresh_inventory
        self.verifiers: List[Verifier] = list(VERIFIERS)  # trust adds the signature check (agent.trust)
        self.clock = clock
        self.pending: Optional[PendingShutdown] = None
        self._lock = threading.Lock()

    def handle(self, payload: bytes) -> Optional[Dict[str, Any]]:
        """Accept, execute (once per id) and ack one command payload. Returns the ack sent."""
        now = self.clock()
        seen = {row[0]: row for row in (self.ctx.get_state("cmd_seen", []) or [])}
        cid = command_id(payload)
        ack: Optional[Dict[str, Any]]
        if cid is not None and cid in seen:  # redelivered: same answer, not executed again
            ack = _ack(cid, seen[cid][1], seen[cid][2])
            self.publish_ack(ack)
            return ack
        try:
            cmd = accept(payload, now, self.verifiers)
            self._observe_clock(cmd, now)
            self.execute(cmd)
            ack = _ack(cmd["id"], True, None)
        except Refused as e:
            ack = _ack(cid, False, str(e)) if cid else None
        except Exception as e:  # the OS refused (no permission, no shutdown.exe ...)
            log.warning("command %s failed: %s", cid, e)
            ack = _ack(cid, False, "%s: %s" % (type(e).__name__, e)) if cid else None
        if ack is None:
            log.warning("dropped a command without a usable id")
            return None
        rows = list(seen.values()) + [[ack["id"], ack["ok"], ack.get("error")]]
        self.ctx.set_state("cmd_seen", rows[-SEEN_KEEP:])
        self.publish_ack(ack)
        return ack

    def _observe_clock(self, cmd: Dict[str, Any], now: datetime) -> None:
        """A command issued in our future means our clock is behind; a fresh one bounds the offset.
        (A command queued while the PC was off is old, so an old ``issued`` proves nothing.)"""
        ahead = (cmd["_issued"] - now).total_seconds()
        if ahead > 0 or -ahead < self.ctx.cfg.clock_tolerance_s:
            self.ctx.clock_offset = max(ahead, 0.0)  # type: ignore[attr-defined]

    def execute(self, cmd: Dict[str, Any]) -> None:
        kind, args = cmd["kind"], cmd.get("args") or {}
        if kind == "message":
            self.desktop.notify(args["text"], int(args.get("duration_s", 30)))
        elif kind == "shutdown":
            self._shutdown(args)
        elif kind == "cancel_shutdown":
            self.cancel_shutdown("关机已取消。/ Shutdown cancelled.")
        elif kind == "refresh_inventory":
            self.refresh_inventory()
        elif kind == "wake":
            from agent.wol import DEFAULT_PORT, send_magic

            n = send_magic(args["macs"], args["broadcast"], int(args.get("port", DEFAULT_PORT)))
            log.info("wake-on-LAN: %d magic packet(s) sent to %s", n, args["broadcast"])
        else:  # validate_command knows every kind; keep a clear error if that ever changes
            raise Refused("unknown kind %r" % kind)

    def _shutdown(self, args: Dict[str, Any]) -> None:
        """``shutdown``: after ``delay_s``; with ``in_use_delay_s`` (雷雨关机) a PC in use right now gets
        that longer countdown instead, with a reminder a minute before the end (docs/commands.md)."""
        delay = int(args.get("delay_s", 60))
        in_use = "in_use_delay_s" in args and bool(self.ctx.in_use)
        if in_use:
            delay = int(args["in_use_delay_s"])
        text = args.get("text")
        if not text or "in_use_delay_s" in args:  # the countdown under the collector's text (雷雨关机)
            text = "%s\n%s" % (text or "请保存文件。/ Save your work.", countdown_text(delay))
        reminders: List[Tuple[float, str]] = [(delay - 60.0, countdown_text(60))] if in_use and delay > 90 else []
        log.info("shutdown in %d s (%s)", delay, "in use: countdown" if in_use else "idle")
        self.schedule_shutdown(delay, text, reminders=reminders)

    def schedule_shutdown(self, delay_s: float, text: str, still_ok: Callable[[], bool] = lambda: True,
                          on_done: Callable[[bool], None] = lambda done: None,
                          reminders: Optional[List[Tuple[float, str]]] = None) -> None:
        with self._lock:
            if self.pending is not None:
                self.pending.cancel()
            self.desktop.notify(text, int(min(max(delay_s, 5), 300)))
            self.pending = PendingShutdown(self.desktop, delay_s, still_ok, on_done, reminders or []).start()

    def cancel_shutdown(self, text: Optional[str] = None) -> bool:
        with self._lock:
            pending, self.pending = self.pending, None
        if pending is None or pending.cancelled:
            return False
        pending.cancel()
        if text:
            self.desktop.notify(text, 10)
        return True


def countdown_text(delay_s: int) -> str:
    """The countdown line of a shutdown notice, in minutes from two minutes up, else in seconds."""
    if delay_s >= 120:
        m = delay_s // 60
        return "本机将在 %d 分钟后关机。/ This PC shuts down in %d min." % (m, m)
    return "本机将在 %d 秒后关机。/ This PC shuts down in %d s." % (delay_s, delay_s)


def _ack(cid: str, ok: bool, error: Optional[str]) -> Dict[str, Any]:
    ack: Dict[str, Any] = {"id": cid, "ok": bool(ok)}
    if error:
        ack["error"] = error
    return ack


def eod_trigger(shutdown_after: Optional[str]) -> Any:
    """APScheduler trigger for the end-of-day check: every minute from HH:MM to 23:59 (local time),
    or None when the policy sets no end-of-day shutdown."""
    if not shutdown_after:
        return None
    from apscheduler.triggers.combining import OrTrigger
    from apscheduler.triggers.cron import CronTrigger

    hh, mm = (int(x) for x in shutdown_after.split(":"))
    first = CronTrigger(hour=hh, minute="%d-59" % mm)
    if hh == 23:
        return first
    return OrTrigger([first, CronTrigger(hour="%d-23" % (hh + 1), minute="*")])


def eod_due(now: datetime, shutdown_after: Optional[str], in_use: bool, done_on: Optional[str]) -> bool:
    """End-of-day shutdown: past the policy's HH:MM today (local time), not in use, not done today."""
    if not shutdown_after or in_use:
        return False
    hh, mm = (int(x) for x in shutdown_after.split(":"))
    today: date = now.date()
    return (now.hour, now.minute) >= (hh, mm) and done_on != today.isoformat()
