"""What probes and commands see of the agent: settings, the current policy, emit, small state."""
from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

import protocol
from agent.config import AgentConfig
from agent.faulttrack import FaultTracker
from agent.outbox import Outbox

log = logging.getLogger(__name__)

# settings the school's policy may override (policy key == AgentConfig attribute)
POLICY_SETTINGS = ("idle_minutes", "heartbeat_s")
POLICY_REFUSED = "policy_refused"  # fault raised when a policy is refused (e.g. deny rules that hit the system)


class Context:
    def __init__(self, cfg: AgentConfig, outbox: Outbox, wake: Callable[[], None] = lambda: None) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self._wake = wake
        self._lock = threading.Lock()
        self.raw_policy: Dict[str, Any] = {}
        self.policy: Dict[str, Any] = dict(protocol.DEFAULT_POLICY)
        self.policy_listeners: List[Callable[[], None]] = []
        self.policy_gate: Optional[Callable[[Any], None]] = None  # raises to refuse a policy (agent.trust)
        self.faults = FaultTracker(self.emit, lambda: outbox.get_meta("faults_open"),
                                   lambda v: outbox.set_meta("faults_open", v), cfg.fault_hold_s)
        # usage, updated by the usage probe, read by the heartbeat
        self.in_use = False
        self.idle_s: Optional[float] = None
        self.foreground: Optional[str] = None
        saved = outbox.get_meta("policy")
        if saved:
            try:
                obj = json.loads(saved)
                if cfg.command_key:  # kept before the key was pinned: only a signed one still holds
                    from common.signing import verify

                    verify(obj, cfg.command_key)
                self._apply_policy(obj)
            except protocol.Rejected as r:
                self._refused(r)
            except ValueError as e:  # also SignatureError
                log.warning("ignored the saved policy: %s", e)

    # -- events ------------------------------------------------------------------
    def emit(self, etype: str, data: Dict[str, Any], ts: Optional[datetime] = None) -> Dict[str, Any]:
        ev = self.outbox.add(etype, data, ts)
        self._wake()
        return ev

    # -- settings and policy -------------------------------------------------------
    def setting(self, name: str) -> Any:
        if name in POLICY_SETTINGS and name in self.raw_policy:
            return self.policy[name]
        return getattr(self.cfg, name)

    def set_policy(self, obj: Any) -> None:
        """Validate, apply, remember (so it holds offline after a restart) and notify listeners."""
        if self.policy_gate is not None:
            self.policy_gate(obj)
        try:
            self._apply_policy(obj)
        except protocol.Rejected as r:
            self._refused(r)
            raise
        self.faults.clear(POLICY_REFUSED, "a valid policy applied")
        self.outbox.set_meta("policy", json.dumps(obj, ensure_ascii=False))
        for fn in list(self.policy_listeners):
            try:
                fn()
            except Exception as e:  # a listener must not stop the others
                log.warning("policy listener failed: %s", e)

    def _refused(self, r: protocol.Rejected) -> None:
        """Report a refused policy (a fault, raised once until a valid policy applies); the last one stays."""
        log.warning("policy refused, the previous one stays: %s", r.message)
        self.faults.raise_(POLICY_REFUSED, "warning", "policy refused, the previous one stays: %s" % r.message[:400])

    def _apply_policy(self, obj: Any) -> None:
        merged = protocol.validate_policy(obj)
        if not self.cfg.command_key:  # nobody vouches for this policy: it may report, not enforce
            from agent.trust import report_only

            obj, merged = report_only(obj), report_only(merged)
        with self._lock:
            self.raw_policy = dict(obj)
            self.policy = merged

    # -- small persistent state (JSON values in the outbox's meta table) -----------
    def get_state(self, key: str, default: Any = None) -> Any:
        raw = self.outbox.get_meta("state:" + key)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return default

    def set_state(self, key: str, value: Any) -> None:
        self.outbox.set_meta("state:" + key, json.dumps(value, ensure_ascii=False))
