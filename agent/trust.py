"""The agent's trust gate: with ``command_key`` set (pinned at enrolment, or in agent.ini), only
commands and policies signed by the school's Ed25519 key are obeyed; anything else is refused and
reported (a command's ack ``ok: false``, an ``untrusted_policy`` fault). Without a pinned key the
agent only reports: it blocks no program and shuts nothing down (docs/security.md).

- Commands: the signature must verify and the command may not be valid for longer than
  ``MAX_COMMAND_TTL_S``; expiry and "each id once" are checked by agent.commands (a replayed id
  is acknowledged again with its first result and never executed twice).
- Policies: the signature must verify and the policy may not be older than the one in force
  (``issued``), so a captured old policy cannot be replayed to loosen the rules.
"""
from __future__ import annotations

import logging
from typing import Any, Dict

import protocol
from agent.commands import Refused, Verifier
from common import signing
from common.signing import ReplayGuard, SignatureError

log = logging.getLogger(__name__)

MAX_COMMAND_TTL_S = 7 * 86400.0


def command_verifier(public_key: str) -> Verifier:
    def verify(cmd: Dict[str, Any], payload: bytes) -> None:
        try:
            signing.verify(protocol.decode_json(payload), public_key)
        except (SignatureError, protocol.Rejected) as e:
            raise Refused("signature: %s" % e) from None
        if (cmd["_expires"] - cmd["_issued"]).total_seconds() > MAX_COMMAND_TTL_S:
            raise Refused("signature: command valid for more than %d days" % (MAX_COMMAND_TTL_S // 86400))
    return verify


UNTRUSTED_POLICY = "untrusted_policy"
POWER_KINDS = ("shutdown", "wake")


def report_only(policy: Dict[str, Any]) -> Dict[str, Any]:
    """What an agent without a pinned key makes of a policy: "block" becomes "report" and there is no
    end-of-day shutdown, no projector switch-off, no USB blocking, no update (a policy nobody signed must not
    stop programs, switch PCs or projectors off or lock out USB sticks)."""
    out = dict(policy)
    software = out.get("software")
    if isinstance(software, dict) and software.get("action") == "block":
        out["software"] = dict(software, action="report")
    if out.get("shutdown_after") is not None:
        out["shutdown_after"] = None
    usb = out.get("usb")
    if isinstance(usb, dict) and usb.get("block"):
        out["usb"] = dict(usb, block=False)
    out.pop("projector_off_with_pc", None)
    out.pop("agent_update", None)  # nor an update (it would be refused anyway: no key to check it with)
    return out


def refuse_power(cmd: Dict[str, Any], payload: bytes) -> None:
    if cmd.get("kind") in POWER_KINDS:
        raise Refused("refused: this agent has no pinned command key (not enrolled), so it obeys no %s"
                      % cmd.get("kind"))


class PolicyGate:
    def __init__(self, public_key: str, guard: ReplayGuard, faults: Any = None) -> None:
        self.public_key = public_key
        self.guard = guard
        self.faults = faults

    def __call__(self, obj: Any) -> None:
        """Raise SignatureError unless the policy is signed by the collector and not older than the last;
        a refused policy raises the ``untrusted_policy`` fault, the next good one clears it."""
        try:
            signing.verify(obj, self.public_key)
            self.guard.check_policy(obj)
        except SignatureError as e:
            log.warning("policy refused: %s", e)
            if self.faults is not None:
                self.faults.raise_(UNTRUSTED_POLICY, "warning", "policy refused: %s" % e)
            raise
        if self.faults is not None:
            self.faults.clear(UNTRUSTED_POLICY, "a signed policy was applied")


def install(agent: Any) -> None:
    """Turn the gate on for an Agent whose config has ``command_key``; without one, refuse power commands."""
    key = agent.cfg.command_key
    if not key:
        agent.commands.verifiers.append(refuse_power)
        return
    kid = signing.check_public_key(key)
    # (an agent that enrolled after it started drops the "no key: no shutdown" rule now)
    agent.commands.verifiers = [v for v in agent.commands.verifiers if v is not refuse_power] + \
        [command_verifier(key)]
    agent.ctx.policy_gate = PolicyGate(key, ReplayGuard(agent.outbox.get_meta, agent.outbox.set_meta),
                                       agent.ctx.faults)
    log.info("commands and policies must be signed (key %s)", kid)
