"""The agent process: outbox, MQTT connection with birth/Last Will, publisher and scheduled probes."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

import protocol
from agent.config import AgentConfig
from agent.outbox import Outbox
from agent.probes import idle as idle_probe
from agent.probes import run_probe, system
from bbt import __version__
from bbt.mqttconf import make_client, parse_broker_url

log = logging.getLogger(__name__)


def now() -> datetime:
    return datetime.now(timezone.utc).astimezone()


class Agent:
    def __init__(self, cfg: AgentConfig, idle_source: Optional[idle_probe.IdleSource] = None) -> None:
        self.cfg = cfg
        self.idle = idle_source or idle_probe.default_source()
        os.makedirs(cfg.data_dir, exist_ok=True)
        self.outbox = Outbox(os.path.join(cfg.data_dir, "outbox.db"), cfg.outbox_max_events,
                             int(cfg.outbox_max_mb * 1024 * 1024))
        self.boot_id = uuid.uuid4().hex
        self.policy: Dict[str, Any] = {}  # the school's policy once received; settings fall back to config
        self.in_use = False
        self.session_id: Optional[str] = None
        self.session_start: Optional[datetime] = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._threads: List[threading.Thread] = []
        self.client: Any = None
        self.status_topic = protocol.status_topic(cfg.school, cfg.device)
        self.events_topic = protocol.events_topic(cfg.school, cfg.device)

    # -- events ------------------------------------------------------------------
    def emit(self, etype: str, data: Dict[str, Any]) -> Dict[str, Any]:
        ev = self.outbox.add(etype, data)
        self._wake.set()
        return ev

    def _status(self, online: bool, reason: str) -> bytes:
        return protocol.dumps(protocol.make_status(online, reason, now(), self.boot_id, __version__))

    # -- MQTT ------------------------------------------------------------------
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

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            if msg.topic.endswith("/policy"):
                self.policy = protocol.validate_policy(json.loads(msg.payload.decode("utf-8")))
                log.info("policy updated")
        except Exception as e:  # never raise in a callback
            log.warning("ignored message on %s: %s", msg.topic, e)

    def _publisher(self) -> None:
        """Drain the outbox oldest first; delete only what the broker acknowledged."""
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while self._connected.is_set():
                batch = self.outbox.peek()
                if not batch:
                    break
                events = [ev for _, ev in batch]
                payload = protocol.dumps(events if len(events) > 1 else events[0])
                info = self.client.publish(self.events_topic, payload, qos=1)
                try:
                    info.wait_for_publish(timeout=10)
                except (RuntimeError, ValueError) as e:
                    log.debug("publish not sent: %s", e)
                if not info.is_published():
                    break
                self.outbox.remove([s for s, _ in batch])
                if self._stop.is_set():
                    break
                if len(batch) > 1:
                    time.sleep(1.0 / max(self.cfg.replay_rate, 0.1))

    # -- probes ------------------------------------------------------------------
    def heartbeat(self) -> None:
        fields: Dict[str, Any] = run_probe("system", system.read, {}) or {}
        idle_s = run_probe("idle", self.idle.idle_seconds)
        in_use = idle_s is not None and idle_s < float(self.policy.get("idle_minutes") or self.cfg.idle_minutes) * 60
        self._track_session(in_use)
        fields.update({"in_use": in_use, "idle_s": int(idle_s) if idle_s is not None else None})
        if fields["idle_s"] is None:
            del fields["idle_s"]
        self.emit("heartbeat", fields)

    def _track_session(self, in_use: bool) -> None:
        if in_use and not self.in_use:
            self.session_id = uuid.uuid4().hex[:16]
            self.session_start = now()
            self.emit("session", {"state": "start", "session_id": self.session_id})
        elif not in_use and self.in_use:
            self._end_session()
        self.in_use = in_use

    def _end_session(self) -> None:
        if self.session_id is None or self.session_start is None:
            return
        end = now()
        self.emit("session", {"state": "end", "session_id": self.session_id,
                              "start": protocol.format_time(self.session_start), "end": protocol.format_time(end),
                              "active_s": int((end - self.session_start).total_seconds())})
        self.session_id = None
        self.in_use = False

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        clean = self.outbox.get_meta("running", "0") != "1"
        self.outbox.set_meta("running", "1")
        boot = run_probe("boot_time", system.boot_time, time.time())
        self.emit("power", {"state": "on", "boot_time": protocol.format_time(
            datetime.fromtimestamp(boot, timezone.utc).astimezone()), "clean": clean})
        if not clean:
            self.emit("fault", {"code": "unclean_shutdown", "severity": "warning", "state": "raised",
                                "detail": "the previous run did not stop cleanly (power cut or kill)"})
        bcfg = parse_broker_url(self.cfg.broker, username=self.cfg.username, password=self.cfg.password,
                                ca_file=self.cfg.ca_file, cert_file=self.cfg.cert_file, key_file=self.cfg.key_file)
        self.client = make_client(bcfg, self.cfg.device, clean_session=True)
        self.client.will_set(self.status_topic, self._status(False, "lost"), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.connect_async(bcfg.host, bcfg.port, bcfg.keepalive)
        self.client.loop_start()
        self._spawn(self._publisher, "publisher")
        self._spawn(self._heartbeat_loop, "heartbeat")

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name="bbt-agent-" + name, daemon=True)
        t.start()
        self._threads.append(t)

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            run_probe("heartbeat", self.heartbeat)
            self._stop.wait(float(self.policy.get("heartbeat_s") or self.cfg.heartbeat_s))

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Clean stop: power off event, flush, retained 'shutdown' status, disconnect."""
        self._end_session()
        self.emit("power", {"state": "off"})
        deadline = time.time() + flush_timeout
        while len(self.outbox) and self._connected.is_set() and time.time() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(5)
        if self.client is not None:
            if self._connected.is_set():
                self.client.publish(self.status_topic, self._status(False, "shutdown"), qos=1,
                                    retain=True).wait_for_publish(3)
            self.client.disconnect()
            self.client.loop_stop()
        self.outbox.set_meta("running", "0")
        self.outbox.close()
