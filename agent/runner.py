"""The agent process: probes -> outbox -> MQTT, commands in, policy applied live.

Threads: paho's network loop (callbacks only queue work), the publisher (drains the outbox
oldest first, deletes on PUBACK), the command worker, and the ticker that runs every periodic
probe (program scan, USB, power, usage, heartbeat, faults, drift, inventory) on one shared 12 s
tick (agent/ticker.py explains why not APScheduler for these). APScheduler runs what happens at
a clock time: the end-of-day shutdown, a cron job from the policy's ``shutdown_after``.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import protocol
from agent import trust as agent_trust
from agent.commands import Commands
from agent.config import AgentConfig
from agent.context import Context
from agent.desktop import Desktop, default_desktop
from agent.outbox import Outbox
from agent.probes import Probe, all_probes, run_probe
from agent.probes.idle import IdleSource
from agent.probes.usage import UsageProbe
from agent.ticker import Ticker
from bbt import __version__
from bbt.mqttconf import make_client, parse_broker_url

log = logging.getLogger(__name__)
LOOP_TIMEOUT_S = 40.0
TICK_S = 12.0  # the probes' shared tick: the program scan reports within 15 s, and 12 s divides the minute


def quiet_network_loop(client: Any, timeout: float) -> None:
    """paho's network thread wakes every second (select timeout 1 s) even when idle; on a PC that is
    idle for hours that is most of the agent's CPU. Same thread, same reconnect logic, a longer
    timeout: publishes still wake it at once (paho's socket pair), keepalive pings stay on time."""
    def main() -> None:
        try:
            client.loop_forever(timeout=timeout, retry_first_connection=True)
        finally:
            client._thread = None

    client._thread_main = main


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


class Agent:
    def __init__(self, cfg: AgentConfig, probes: Optional[List[Probe]] = None,
                 desktop: Optional[Desktop] = None, idle_source: Optional[IdleSource] = None) -> None:
        self.cfg = cfg
        os.makedirs(cfg.data_dir, exist_ok=True)
        self.outbox = Outbox(os.path.join(cfg.data_dir, "outbox.db"), cfg.outbox_max_events,
                             int(cfg.outbox_max_mb * 1024 * 1024))
        self._wake = threading.Event()
        self.ctx = Context(cfg, self.outbox, self._wake.set)
        self.probes = all_probes() if probes is None else probes
        if idle_source is not None:
            for p in self.probes:
                if isinstance(p, UsageProbe):
                    p.source = idle_source
        self.desktop = desktop or default_desktop(cfg.desktop)
        self.commands = Commands(self.ctx, self.desktop, self._publish_ack, self.refresh_inventory)
        agent_trust.install(self)
        self.boot_id = os.urandom(8).hex()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._cmds: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self._threads: List[threading.Thread] = []
        self._intervals: Dict[str, float] = {}
        self.scheduler: Any = None  # APScheduler, started when a clock-time job is needed
        self._sched_lock = threading.Lock()
        self.ticker: Optional[Ticker] = None
        self.client: Any = None
        self.status_topic = protocol.status_topic(cfg.school, cfg.device)
        self.events_topic = protocol.events_topic(cfg.school, cfg.device)
        self.ack_topic = protocol.ack_topic(cfg.school, cfg.device)
        self.ctx.policy_listeners.append(self._reschedule)

    @property
    def policy(self) -> Dict[str, Any]:
        return self.ctx.policy

    def emit(self, etype: str, data: Dict[str, Any]) -> Dict[str, Any]:
        return self.ctx.emit(etype, data)

    def _status(self, online: bool, reason: str) -> bytes:
        return protocol.dumps(protocol.make_status(online, reason, now(), self.boot_id, __version__))

    # -- MQTT callbacks: never block, never raise --------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker refused the agent: %s", rc)
            return
        client.publish(self.status_topic, self._status(True, "startup"), qos=1, retain=True)
        client.subscribe([(protocol.cmd_topic(self.cfg.school, self.cfg.device), 1),
                          (protocol.policy_topic(self.cfg.school), 1)])
        self._connected.set()
        self._wake.set()
        log.info("agent connected to broker")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from broker (%s); reconnecting with backoff", rc)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            if msg.topic.endswith("/policy"):
                if msg.payload:
                    self.ctx.set_policy(json.loads(msg.payload.decode("utf-8")))
                    log.info("policy applied")
            elif msg.topic.endswith("/cmd"):
                self._cmds.put(bytes(msg.payload))
        except Exception as e:  # a bad policy keeps the last good one
            log.warning("ignored message on %s: %s", msg.topic, e)

    def _publish_ack(self, ack: Dict[str, Any]) -> None:
        if self.client is not None:
            self.client.publish(self.ack_topic, protocol.dumps(ack), qos=1)

    # -- threads -------------------------------------------------------------------------
    def _publisher(self) -> None:
        """Drain the outbox oldest first; delete only what the broker acknowledged (PUBACK)."""
        while not self._stop.is_set():
            self._wake.wait(300.0)  # set by emit, connect and stop: no busy polling
            self._wake.clear()
            while self._connected.is_set():
                batch = self.outbox.next_batch()
                if not batch:
                    break
                # stored as protocol.dumps writes it: sent as it is, an array when there are several
                payload = batch[0][1] if len(batch) == 1 else b"[" + b",".join(raw for _, raw in batch) + b"]"
                try:
                    info = self.client.publish(self.events_topic, payload, qos=1)
                    info.wait_for_publish(timeout=10)
                except (RuntimeError, ValueError) as e:
                    log.debug("publish not sent: %s", e)
                    break
                if not info.is_published():
                    break
                self.outbox.remove([s for s, _ in batch])
                if self._stop.is_set():
                    break
                if self.outbox.pending:  # a backlog: replay at a bounded rate
                    time.sleep(1.0 / max(self.cfg.replay_rate, 0.1))

    def _command_worker(self) -> None:
        while not self._stop.is_set():
            payload = self._cmds.get()  # blocks without waking: stop() puts None
            if payload is None:  # stop
                return
            run_probe("command", self.commands.handle, None, payload)

    def refresh_inventory(self) -> None:
        if self.ticker is not None and self.ticker.has("inventory"):
            self.ticker.run_soon("inventory")
            return
        inv = next((p for p in self.probes if p.name == "inventory"), None)
        if inv is not None:
            self._run_probe(inv)

    # -- scheduling ---------------------------------------------------------------------
    def _run_probe(self, probe: Probe) -> None:
        run_probe(probe.name, probe.run, None, self.ctx)

    def _probe_runner(self, probe: Probe) -> Any:
        return lambda: self._run_probe(probe)

    def _start_scheduler(self) -> None:
        """Every periodic probe on the ticker; APScheduler for jobs at a clock time (end of day)."""
        for p in self.probes:
            iv = run_probe(p.name, p.interval, None, self.ctx)
            if iv:
                self._intervals[p.name] = iv
        self.ticker = Ticker(min([TICK_S] + list(self._intervals.values())))  # shorter if a setting asks (tests)
        for p in self.probes:
            if p.name in self._intervals:
                self.ticker.add(p.name, self._probe_runner(p), self._intervals[p.name])
        self._schedule_end_of_day()
        self.ticker.start()

    def _schedule_end_of_day(self) -> None:
        """A cron job every minute from the policy's ``shutdown_after`` to midnight (nothing during
        the school day); each run shuts down only when the PC is not in use (:func:`eod_due`).
        APScheduler (and its ~4 MB of modules) is loaded when the policy first asks for this."""
        from agent.commands import eod_trigger

        with self._sched_lock:
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
        if self.ticker is None:
            return
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
        self.commands.schedule_shutdown(warn, text, still_ok=lambda: not self.ctx.in_use, on_done=done)

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
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(bcfg.host, bcfg.port, bcfg.keepalive)
        quiet_network_loop(self.client, min(LOOP_TIMEOUT_S, bcfg.keepalive / 3.0))
        self.client.loop_start()
        self._spawn(self._publisher, "publisher")
        self._spawn(self._command_worker, "commands")
        self._start_scheduler()

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name="bbt-agent-" + name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Clean stop: end the session, power "off", flush, retained 'shutdown' status, disconnect."""
        if self.ticker is not None:
            self.ticker.stop()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
        usage = getattr(self.ctx, "usage", None)
        if usage is not None:
            run_probe("usage", usage.end_session, None, self.ctx)
        self.emit("power", {"state": "off"})
        deadline = time.time() + flush_timeout
        while len(self.outbox) and self._connected.is_set() and time.time() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        self._cmds.put(None)
        for t in self._threads:
            t.join(5)
        self.commands.cancel_shutdown()
        if self.client is not None:
            if self._connected.is_set():
                self.client.publish(self.status_topic, self._status(False, "shutdown"), qos=1,
                                    retain=True).wait_for_publish(3)
            self.client.disconnect()
            self.client.loop_stop()
        for p in self.probes:
            run_probe(p.name, p.close)
        self.outbox.set_meta("running", "0")
        self.outbox.close()
