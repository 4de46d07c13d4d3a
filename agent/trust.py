"""The agent's trust gate: with ``command_key`` set, only commands and policies signed by the
collector's Ed25519 key are obeyed (docs/security.md).

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
from bbt import signing
from bbt.signing import ReplayGuard, SignatureError

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


class PolicyGate:
    def __init__(self, public_key: str, guard: ReplayGuard) -> None:
        self.public_key = public_key
        self.guard = guard

    def __call__(self, obj: Any) -> None:
        """Raise SignatureError unless the policy is signed by the collector and not older than the last."""
        signing.verify(obj, self.public_key)
        self.guard.check_policy(obj)


def install(agent: Any) -> None:
    """Turn the gate on for an Agent whose config has ``command_key`` (no-op otherwise)."""
    key = agent.cfg.command_key
    if not key:
        return
    kid = signing.check_public_key(key)
    agent.commands.verifiers.append(command_verifier(key))
    agent.ctx.policy_gate = PolicyGate(key, ReplayGuard(agent.outbox.get_meta, agent.outbox.set_meta))
    log.info("commands and policies must be signed (key %s)", kid)
