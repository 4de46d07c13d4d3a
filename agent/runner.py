"""The agent process: probes -> outbox -> MQTT, commands in, policy applied live.

Threads: the loop (:mod:`agent.loop`) does all the periodic and network work in one thread:
it drives the MQTT session (:mod:`agent.link`, paho without a thread of its own), runs every
periodic probe when due (:mod:`agent.ticker`), runs the program scan when the kernel announces a
new program, and delivers the outbox. The command worker executes commands (a message box or a
shutdown may take a while) and hands its acks back to the loop. APScheduler runs what happens at a
clock time: the end-of-day shutdown, a cron job from the policy's ``shutdown_after``.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
from datetime import datetime, timezone
from functools import partial
from typing import Any, Callable, Dict, List, Optional

import protocol
from agent import selfupdate
from agent import trust as agent_trust
from agent.commands import Commands
from agent.config import AgentConfig
from agent.context import Context
from agent.desktop import Desktop, default_desktop
from agent.link import Link
from agent.loop import Loop
from agent.outbox import Outbox
from agent.probes import Probe, all_probes, run_probe
from agent.probes.idle import IdleSource
from agent.probes.usage import UsageProbe
from agent.ticker import OsEvents, Ticker
from common import __version__
from common.mqttconf import make_client, parse_broker_url

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


class Agent:
    def __init__(self, cfg: AgentConfig, probes: Optional[List[Probe]] = None,
                 desktop: Optional[Desktop] = None, idle_source: Optional[IdleSource] = None,
                 on_update: Optional[Callable[[], None]] = None) -> None:
        self.cfg = cfg
        self.on_update = on_update  # an update was installed: stop, so that the new version starts
        os.makedirs(cfg.data_dir, exist_ok=True)
        self.outbox = Outbox(os.path.join(cfg.data_dir, "outbox.db"), cfg.outbox_max_events,
                             int(cfg.outbox_max_mb * 1024 * 1024))
        self.loop = Loop()
        self.ticker = Ticker(self.loop.clock, on_soon=self.loop.wake)
        self.ctx = Context(cfg, self.outbox, self.loop.wake)
        self.probes = all_probes() if probes is None else probes
        if idle_source is not None:
            for p in self.probes:
                if isinstance(p, UsageProbe):
                    p.source = idle_source
        self.desktop = desktop or default_desktop(cfg.desktop)
        self.commands = Commands(self.ctx, self.desktop, self._publish_ack, self.refresh_inventory)
        agent_trust.install(self)
        self.boot_id = os.urandom(8).hex()
        self._cmds: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._worker: Optional[threading.Thread] = None
        self._intervals: Dict[str, float] = {}
        self.scheduler: Any = None  # APScheduler, started when a clock-time job is needed
        self._sched_lock = threading.Lock()
        self._stopped = False  # set by stop(): a policy arriving during the stop starts no scheduler
        self.link: Optional[Link] = None
        self.client: Any = None
        from agent.enrol import Renewal

        self.renewal = Renewal(cfg) if cfg.enrol_secret else None
        self.status_topic = protocol.status_topic(cfg.school, cfg.device)
        self.events_topic = protocol.events_topic(cfg.school, cfg.device)
        self.ack_topic = protocol.ack_topic(cfg.school, cfg.device)
        self.ctx.policy_listeners.append(self._reschedule)
        self._updating = threading.Lock()
        if on_update is not None:
            self.ctx.policy_listeners.append(self._consider_update)

    @property
    def policy(self) -> Dict[str, Any]:
        return self.ctx.policy

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.connected.is_set()

    def emit(self, etype: str, data: Dict[str, Any]) -> Dict[str, Any]:
        return self.ctx.emit(etype, data)

    def _status(self, online: bool, reason: str) -> bytes:
        return protocol.dumps(protocol.make_status(online, reason, now(), self.boot_id, __version__))

    # -- MQTT (in the loop's thread) ---------------------------------------------------
    def _on_connected(self, client: Any) -> None:
        client.publish(self.status_topic, self._status(True, "startup"), qos=1, retain=True)
        run_probe("update", selfupdate.mark_healthy, None, self.cfg.data_dir, __version__)
        client.subscribe([(protocol.cmd_topic(self.cfg.school, self.cfg.device), 1),
                          (protocol.policy_topic(self.cfg.school), 1)])

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            if topic.endswith("/policy"):
                if payload:
                    self.ctx.set_policy(json.loads(payload.decode("utf-8")))
                    log.info("policy applied")
            elif topic.endswith("/cmd"):
                self._cmds.put(payload)
        except Exception as e:  # a bad policy keeps the last good one
            log.warning("ignored message on %s: %s", topic, e)

    def _on_refused(self, rc: Any) -> None:
        """Our credentials were refused (an admin reset this PC, or the server's store was replaced):
        enrol again in the background when the school's secret is configured (agent.enrol.Renewal)."""
        if self.renewal is not None:
            self.renewal.refused(lambda user, pw: self.loop.call_soon(lambda: self._use_credentials(user, pw)))

    def _use_credentials(self, username: str, password: str) -> None:
        """New credentials from enrolment (in the loop's thread); an agent that started unenrolled pins the
        key it received now, so from here on it obeys only what that key signed."""
        if self.cfg.command_key and self.ctx.policy_gate is None:
            agent_trust.install(self)
        self.client.username_pw_set(username, password)
        if self.link is not None:
            self.link.retry_now()

    def _publish_ack(self, ack: Dict[str, Any]) -> None:
        client = self.client
        if client is not None:
            payload = protocol.dumps(ack)
            self.loop.call_soon(lambda: client.publish(self.ack_topic, payload, qos=1))

    def _command_worker(self) -> None:
        while True:
            payload = self._cmds.get()  # blocks without waking: stop() puts None
            if payload is None:  # stop
                return
            run_probe("command", self.commands.handle, None, payload)

    def refresh_inventory(self) -> None:
        if self.ticker.has("inventory"):
            self.ticker.run_soon("inventory")
            return
        inv = next((p for p in self.probes if p.name == "inventory"), None)
        if inv is not None:
            self._run_probe(inv)

    # -- scheduling ---------------------------------------------------------------------
    def _run_probe(self, probe: Probe) -> None:
        run_probe(probe.name, probe.run, None, self.ctx)

    def _probe_job(self, probe: Probe, events: Optional[OsEvents] = None) -> Any:
        if events is None:
            return lambda: self._run_probe(probe)

        def job() -> None:
            self._run_probe(probe)
            events.after_run()
        return job

    def _start_scheduler(self) -> None:
        """Every periodic probe on the ticker (a probe the OS can wake also on its socket); APScheduler
        for jobs at a clock time (end of day)."""
        for p in self.probes:
            iv = run_probe(p.name, p.interval, None, self.ctx)
            if not iv:
                continue
            self._intervals[p.name] = iv
            events = None
            if run_probe(p.name, p.waker) is not None:
                events = OsEvents(self.ticker, p.name, partial(run_probe, p.name, p.waker), partial(getattr, p, "busy"),
                                  partial(run_probe, p.name, p.wanted, True), p.settle_s)
                self.loop.sources.append(events)
            self.ticker.add(p.name, self._probe_job(p, events), iv, wakes=events is None)
            first = run_probe(p.name, p.first_run_s, None, self.ctx)
            if first is not None:
                self.ticker.run_in(p.name, first)
        self._schedule_end_of_day()

    def _schedule_end_of_day(self) -> None:
        """A cron job every minute from the policy's ``shutdown_after`` to midnight (nothing during
        the school day); each run shuts down only when the PC is not in use (:func:`eod_due`).
        APScheduler (and its ~4 MB of modules) is loaded when the policy first asks for this."""
        from agent.commands import eod_trigger

        with self._sched_lock:
            if self._stopped:
                return
            trigger = eod_trigger(self.ctx.policy.get("shutdown_after"))
            if self.scheduler is None:
                if trigger is None:
                    return
                from apscheduler.executors.debug import DebugExecutor
                from apscheduler.jobstores.memory import MemoryJobStore
                from apscheduler.schedulers.background import BackgroundScheduler

                # jobs run in the scheduler's own thread: no worker thread to wake
                self.scheduler = BackgroundScheduler(
                    jobstores={"default": MemoryJobStore()}, executors={"default": DebugExecutor()},
                    job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60})
                self.scheduler.start()
            if self.scheduler.get_job("end-of-day") is not None:
                self.scheduler.remove_job("end-of-day")
            if trigger is not None:
                self.scheduler.add_job(self._end_of_day, trigger, id="end-of-day")

    def _reschedule(self) -> None:
        """The policy changed: periods it sets (heartbeat_s) apply now, without a restart, probes
        that depend on it (the software scan) run at once, and the end-of-day job follows it."""
        run_probe("end-of-day", self._schedule_end_of_day)
        for p in self.probes:
            if p.name not in self._intervals:
                continue
            if p.rerun_on_policy:
                self.ticker.run_soon(p.name)
            iv = run_probe(p.name, p.interval, None, self.ctx)
            if iv and iv != self._intervals[p.name]:
                self._intervals[p.name] = iv
                self.ticker.set_period(p.name, iv)
                log.info("%s now every %s s (policy)", p.name, iv)

    def _consider_update(self) -> None:
        """A policy with an ``agent_update`` offer: verify, fetch and unpack it in a thread of its own
        (a download may take a while), then stop so that the supervisor starts it (agent.selfupdate)."""
        offer = self.ctx.raw_policy.get("agent_update")
        if offer is None or not self._updating.acquire(blocking=False):
            return

        def work() -> None:
            try:
                version = selfupdate.apply_offer(
                    offer, self.cfg.command_key, self.cfg.device, __version__,
                    selfupdate.versions_of(self.cfg.data_dir),
                    selfupdate.server_base(self.cfg.enrol_url, self.cfg.broker), self.cfg.school)
            except (selfupdate.UpdateError, OSError) as e:
                log.warning("agent update refused: %s", e)
                version = None
            finally:
                self._updating.release()
            if version is not None and self.on_update is not None:
                self.on_update()
        threading.Thread(target=work, name="bbt-agent-update", daemon=True).start()

    def _end_of_day(self) -> None:
        from agent.commands import eod_due

        sa = self.ctx.policy.get("shutdown_after")
        pending = self.commands.pending
        if pending is not None and not pending.cancelled and pending.timer.is_alive():
            return
        local = datetime.now()
        if not eod_due(local, sa, self.ctx.in_use, self.ctx.get_state("eod_done")):
            return
        warn = float(self.cfg.shutdown_warn_s)
        text = ("放学了：本机将在 %d 分钟后自动关机，如需继续使用请移动鼠标。/ End of the school day: this PC shuts "
                "down in %d min unless someone uses it." % (max(1, warn // 60), max(1, warn // 60)))

        def done(ok: bool) -> None:
            if ok:
                self.ctx.set_state("eod_done", local.date().isoformat())

        log.info("end-of-day shutdown (policy shutdown_after %s): warning, then off in %d s", sa, warn)
        def still_ok() -> bool:  # right before the power-off: the projector first (policy projector_off_with_pc)
            if self.ctx.in_use:
                return False
            from agent.probes.projector import off_with_pc

            run_probe("projector", off_with_pc, None, self.ctx)
            return True

        self.commands.schedule_shutdown(warn, text, still_ok=still_ok, on_done=done)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        for p in self.probes:
            run_probe(p.name, p.setup, None, self.ctx)
        bcfg = parse_broker_url(self.cfg.broker, username=self.cfg.username, password=self.cfg.password,
                                ca_file=self.cfg.ca_file, cert_file=self.cfg.cert_file, key_file=self.cfg.key_file,
                                keepalive=int(self.cfg.keepalive_s))
        # a persistent session: commands sent while the PC is off arrive when it connects
        self.client = make_client(bcfg, self.cfg.device, clean_session=False)
        self.client.will_set(self.status_topic, self._status(False, "lost"), qos=1, retain=True)
        self.link = Link(self.client, bcfg.host, bcfg.port, bcfg.keepalive, self.outbox, self.events_topic,
                         self.loop.clock, self._on_connected, self._on_message, self.cfg.replay_rate,
                         self._on_refused)
        self.loop.sources.append(self.ticker)  # first: what the probes emit goes out in the same wake-up
        self._start_scheduler()  # (adds the probes the OS wakes)
        self.loop.sources.append(self.link)
        self.loop.start()
        self._worker = threading.Thread(target=self._command_worker, name="bbt-agent-commands", daemon=True)
        self._worker.start()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Clean stop: end the session, power "off", flush, retained 'shutdown' status, disconnect."""
        with self._sched_lock:
            self._stopped = True
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        if self.link is not None and self.loop.join(0) is False:
            self.loop.call_soon(lambda: self._close(flush_timeout))
            if not self.loop.join(flush_timeout + 10):
                log.warning("the agent's loop did not stop in time")
        else:
            self._last_events()
        self._cmds.put(None)
        if self._worker is not None:
            self._worker.join(5)
        self.commands.cancel_shutdown()
        for p in self.probes:
            run_probe(p.name, p.close)
        self.outbox.set_meta("running", "0")
        self.outbox.close()
        self.loop.close()

    def _last_events(self) -> None:
        usage = getattr(self.ctx, "usage", None)
        if usage is not None:
            run_probe("usage", usage.end_session, None, self.ctx)
        self.emit("power", {"state": "off"})

    def _close(self, flush_timeout: float) -> None:
        """In the loop: no more probes, the last events, then the link flushes and says goodbye."""
        self.ticker.clear()
        self._last_events()
        assert self.link is not None
        self.link.close(flush_timeout, self._status(False, "shutdown"), self.status_topic, self.loop.stop)
