"""Per-school policy: validated, stored with a version, published retained on bbt/v1/{school}/policy.

The dashboard and the CLI call these functions; :func:`publish` is the one place a policy goes
on the wire (a signature can be added there).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import protocol
from collector.db import Database
from collector.devices import school_keys
from collector.devices.mqttout import Send
from collector.devices.projectors import projector_addresses
from common import signing
from common.errors import BbtError
from protocol.programs import UnsafeRule

DEFAULT_HEARTBEAT_S = float(protocol.DEFAULT_POLICY["heartbeat_s"])


class PolicyError(BbtError):
    pass


def load_file(path: str) -> Any:
    """Read a policy JSON file; a clear error names the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PolicyError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}: cannot read it ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PolicyError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None


class UnsafePolicyError(PolicyError):
    """Deny rules that would hit system programs or every program; ``problems`` names each rule and its hit."""

    def __init__(self, source: str, problems: list[UnsafeRule]) -> None:
        zh = "；".join(f"禁止规则“{p.rule}”" + (f"会命中系统程序 {p.hits}" if p.hits else "会命中所有程序")
                      for p in problems)
        en = "; ".join(p.describe() for p in problems)
        super().__init__(f"{source}: {zh}，策略未保存 / {en}: policy not stored")
        self.problems = problems


def validate(obj: Any, source: str = "policy") -> dict[str, Any]:
    try:
        return protocol.validate_policy(obj)
    except protocol.UnsafePolicy as u:
        raise UnsafePolicyError(source, u.problems) from None
    except protocol.Rejected as r:
        raise PolicyError(f"{source}: {r.message}") from None


def get_policy(db: Database, school: str) -> dict[str, Any]:
    """The school's policy (the defaults if none was set), with its version (0: never set)."""
    rows = db.query("SELECT policy, version, updated, published_version FROM policies WHERE school = ?", (school,))
    if not rows:
        return {"school": school, "version": 0, "policy": dict(protocol.DEFAULT_POLICY), "updated": None,
                "published_version": 0}
    r = rows[0]
    return {"school": school, "version": r["version"], "policy": json.loads(r["policy"]), "updated": r["updated"],
            "published_version": r["published_version"]}


def set_policy(db: Database, school: str, obj: Any, source: str = "policy", now: float | None = None
               ) -> dict[str, Any]:
    """Validate and store a school's policy (all or nothing); returns get_policy's view of it."""
    if not protocol.valid_id(school):
        raise PolicyError(f"school {school!r} must match {protocol.ID_PATTERN}")
    policy = validate(obj, source)
    now = time.time() if now is None else now
    text = json.dumps(policy, ensure_ascii=False, sort_keys=True)
    with db.transaction():
        db.execute("INSERT INTO schools (school) VALUES (?) ON CONFLICT (school) DO NOTHING", (school,))
        db.execute("INSERT INTO policies (school, policy, version, updated) VALUES (?, ?, 1, ?) "
                   "ON CONFLICT (school) DO UPDATE SET policy = excluded.policy, "
                   "version = policies.version + 1, updated = excluded.updated", (school, text, now))
    return get_policy(db, school)


def usb_policy(db: Database, school: str) -> dict[str, Any]:
    """The school's USB policy (protocol 1.2: allow-list and block), the defaults if none was set."""
    rows = db.query("SELECT policy FROM policies WHERE school = ?", (school,))
    stored = json.loads(rows[0]["policy"]).get("usb") if rows else None
    return protocol.validate_usb_policy(stored) if isinstance(stored, dict) else dict(protocol.DEFAULT_USB)


def heartbeat_s(db: Database, school: str) -> float:
    rows = db.query("SELECT policy FROM policies WHERE school = ?", (school,))
    if rows:
        value = json.loads(rows[0]["policy"]).get("heartbeat_s")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_HEARTBEAT_S


def payload(policy: dict[str, Any], key: Any = None) -> bytes:
    """The policy as it goes on the wire: signed (Ed25519, fresh ``issued``) with the school's key
    (collector.devices.school_keys.private_key) or BBT_SIGNING_KEY."""
    return protocol.dumps(signing.sign_policy(policy, key=key))


def publish(send: Send, school: str, policy: dict[str, Any], key: Any = None) -> None:
    """The one place a policy goes on the wire: retained, QoS 1, signed with ``key``."""
    send(protocol.policy_topic(school), payload(policy, key), True)


def with_projectors(db: Database, school: str, policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as published: with ``projectors`` ({device: address}, from the devices import) so that
    each classroom's agent knows the projector it polls (docs/agent.md "Projectors")."""
    addresses = projector_addresses(db, school)
    return dict(policy, projectors=addresses) if addresses else policy


def as_published(db: Database, school: str, policy: dict[str, Any], key: Any) -> dict[str, Any]:
    """The stored policy with what comes from elsewhere: the projector addresses and the signed
    ``agent_update`` offer (collector.devices.agent_updates)."""
    from collector.devices.agent_updates import signed_offer

    out = with_projectors(db, school, policy)
    offer = signed_offer(db, school, key)
    return dict(out, agent_update=offer) if offer else out


def republish(db: Database, school: str, now: float | None = None) -> None:
    """Publish the school's policy again (a new version; the defaults if it has none): what it carries
    from elsewhere (the projector addresses) changed."""
    now = time.time() if now is None else now
    db.execute("INSERT INTO policies (school, policy, version, updated) VALUES (?, ?, 1, ?) "
               "ON CONFLICT (school) DO UPDATE SET version = policies.version + 1, updated = excluded.updated",
               (school, json.dumps(protocol.DEFAULT_POLICY, sort_keys=True), now))


def mark_published(db: Database, school: str, version: int, now: float | None = None) -> None:
    db.execute("UPDATE policies SET published_version = ?, published = ? WHERE school = ? AND published_version < ?",
               (version, time.time() if now is None else now, school, version))


def publish_stored(db: Database, send: Send, only_pending: bool = True) -> int:
    """Publish stored policies (those not yet published, or all); returns how many were sent."""
    where = "WHERE published_version < version" if only_pending else ""
    n = 0
    for r in db.query(f"SELECT school, policy, version FROM policies {where} ORDER BY school"):
        key = school_keys.private_key(db, r["school"])
        publish(send, r["school"], as_published(db, r["school"], json.loads(r["policy"]), key), key)
        mark_published(db, r["school"], r["version"])
        n += 1
    return n
