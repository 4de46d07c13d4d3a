"""Enrolment, the agent's side (docs/agent-install.md): with only the school's enrolment secret, ask
the server once for this PC's own MQTT credentials and the school's command-signing key, keep them
in the data directory (``enrolment.json``, readable by the service only) and use them from then on.

The secret never travels (common.enrolwire): the server proves it knows the secret by the answer's
``mac``, so a machine on the network cannot hand the agent a key of its own. The key is pinned:
a later enrolment that brings another key is refused.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional
from urllib.parse import urlsplit

from agent.config import AgentConfig
from common import enrolwire
from common.errors import BbtError

log = logging.getLogger(__name__)

STATE_FILE = "enrolment.json"
TIMEOUT_S = 20.0
RETRY_MIN_S, RETRY_MAX_S = 5.0, 300.0


class EnrolError(BbtError):
    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final  # retrying cannot help (wrong or expired secret, id taken, key changed)


def enrol_url(cfg: AgentConfig) -> str:
    """The server's enrolment endpoint: ``enrol_url`` (a base URL is completed), else the broker's
    host on the dashboard's default port 8080."""
    url = cfg.enrol_url or "http://%s:8080" % (urlsplit(cfg.broker).hostname or "127.0.0.1")
    return url if url.rstrip("/").endswith(enrolwire.PATH) else url.rstrip("/") + enrolwire.PATH


def state_path(cfg: AgentConfig) -> str:
    return os.path.join(cfg.data_dir, STATE_FILE)


def load_state(cfg: AgentConfig) -> Optional[Dict[str, Any]]:
    try:
        with open(state_path(cfg), encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _save_state(cfg: AgentConfig, state: Dict[str, Any]) -> None:
    os.makedirs(cfg.data_dir, exist_ok=True)
    tmp = state_path(cfg) + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, state_path(cfg))


def request(cfg: AgentConfig, url: str) -> Dict[str, Any]:
    """One enrolment exchange; returns the checked answer or raises EnrolError."""
    secret = cfg.enrol_secret or ""
    nonce = secrets.token_hex(16)
    body = {"school": cfg.school, "device": cfg.device, "nonce": nonce,
            "proof": enrolwire.mac(secret, enrolwire.request_text(cfg.school, cfg.device, nonce))}
    req = urllib.request.Request(url, json.dumps(body).encode("utf-8"), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 (the configured server)
            answer = json.loads(resp.read(1 << 20).decode("utf-8"))
    except urllib.error.HTTPError as e:
        try:
            body = json.loads(e.read(4096).decode("utf-8"))
            reason = str(body.get("message") or body.get("error") or "")
        except (ValueError, AttributeError):
            reason = ""
        raise EnrolError("the server refused the enrolment (HTTP %d): %s" % (e.code, reason or e.reason),
                         final=e.code in (400, 403, 409)) from None
    except (OSError, ValueError) as e:
        raise EnrolError("cannot enrol at %s: %s" % (url, e)) from None
    if not isinstance(answer, dict) or not isinstance(answer.get("mac"), str):
        raise EnrolError("the answer from %s is not an enrolment answer" % url)
    import hmac

    if not hmac.compare_digest(enrolwire.mac(secret, enrolwire.answer_text(answer)), answer["mac"]) \
            or answer.get("nonce") != nonce or answer.get("device") != cfg.device:
        raise EnrolError("the answer from %s is not from a server that knows the enrolment secret" % url, True)
    return answer


def _from_answer(cfg: AgentConfig, answer: Dict[str, Any], pinned: Optional[str]) -> Dict[str, Any]:
    from common.signing import SignatureError, check_public_key

    key = answer.get("command_key")
    try:
        check_public_key(str(key))
    except SignatureError as e:
        raise EnrolError("the server sent no usable command key: %s" % e, True) from None
    if pinned and key != pinned:
        raise EnrolError("the server's command key changed (pinned %s...); not accepted. If the school really "
                         "changed its key, delete %s and enrol again" % (pinned[:12], state_path(cfg)), True)
    state = {"school": cfg.school, "device": cfg.device, "username": answer.get("username"),
             "password": answer.get("password"), "command_key": key, "ca_file": None}
    if answer.get("ca"):
        os.makedirs(cfg.data_dir, exist_ok=True)
        ca = os.path.join(cfg.data_dir, "broker-ca.pem")
        with open(ca, "w", encoding="ascii") as f:
            f.write(str(answer["ca"]))
        state["ca_file"] = ca
    return state


def apply(cfg: AgentConfig, state: Dict[str, Any]) -> None:
    """Use the enrolled credentials and pinned key (a command_key set in the config wins)."""
    cfg.username = state["username"]
    cfg.password = state["password"]
    if cfg.command_key and cfg.command_key != state["command_key"]:
        log.warning("agent.ini's command_key differs from the key pinned at enrolment; using agent.ini's")
    cfg.command_key = cfg.command_key or state["command_key"]
    if state.get("ca_file") and not cfg.ca_file:
        cfg.ca_file = state["ca_file"]


def needs_ca(cfg: AgentConfig) -> bool:
    """TLS to the broker without a CA yet: the agent cannot connect before enrolment brings the CA."""
    return urlsplit(cfg.broker).scheme in ("mqtts", "ssl") and not cfg.ca_file


def ensure(cfg: AgentConfig, stop: Optional[threading.Event] = None) -> bool:
    """Before the agent starts: use the saved enrolment, or enrol. When the server cannot be reached the
    agent starts anyway, unenrolled (it collects and only reports; :class:`Renewal` enrols it when the
    broker refuses it), except over TLS without a CA, where it waits and retries. False when it starts
    unenrolled or ``stop`` was set first."""
    state = load_state(cfg)
    if state and state.get("school") == cfg.school and state.get("device") == cfg.device:
        apply(cfg, state)
        return True
    if not cfg.enrol_secret:
        return False
    stop = stop or threading.Event()
    url, delay = enrol_url(cfg), RETRY_MIN_S
    pinned = (state or {}).get("command_key")
    while not stop.is_set():
        try:
            new = _from_answer(cfg, request(cfg, url), pinned)
        except EnrolError as e:
            if not needs_ca(cfg):
                log.warning("enrolment of %s/%s: %s; starting unenrolled (it only reports until it enrols, "
                            "tried again when the broker refuses it)", cfg.school, cfg.device, e)
                return False
            (log.error if e.final else log.warning)("enrolment of %s/%s: %s; retrying in %.0f s",
                                                    cfg.school, cfg.device, e, delay)
            if stop.wait(delay):
                return False
            delay = min(delay * 2, RETRY_MAX_S) if not e.final else RETRY_MAX_S
            continue
        _save_state(cfg, new)
        apply(cfg, new)
        log.info("enrolled %s/%s at %s; command key pinned", cfg.school, cfg.device, url)
        return True
    return False


class Renewal:
    """Enrol after the broker refused the agent (it started unenrolled, or an admin reset the PC and the
    saved credentials stopped working), in a thread of its own, at most every ``interval`` seconds
    (doubling to RETRY_MAX_S). A revoked PC stays out: the server refuses it until it is reset."""

    def __init__(self, cfg: AgentConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self.clock = cfg, clock
        self.interval = 10.0
        self._next = 0.0
        self._busy = threading.Lock()

    def refused(self, use: Callable[[str, str], None]) -> bool:
        """Start a renewal unless one runs or the last was too recent; ``use(username, password)`` is called
        with the new credentials. True when one was started."""
        now = self.clock()
        if now < self._next or not self._busy.acquire(blocking=False):
            return False
        self._next = now + self.interval
        self.interval = min(self.interval * 2, RETRY_MAX_S)
        threading.Thread(target=self._run, args=(use,), name="bbt-agent-enrol", daemon=True).start()
        return True

    def _run(self, use: Callable[[str, str], None]) -> None:
        try:
            pinned = (load_state(self.cfg) or {}).get("command_key") or self.cfg.command_key
            new = _from_answer(self.cfg, request(self.cfg, enrol_url(self.cfg)), pinned)
            _save_state(self.cfg, new)
            apply(self.cfg, new)
            self.interval = 10.0
            log.info("enrolled %s/%s (the broker had refused it); command key pinned", self.cfg.school,
                     self.cfg.device)
            use(new["username"], new["password"])
        except EnrolError as e:
            log.warning("enrolling again failed: %s", e)
        finally:
            self._busy.release()
