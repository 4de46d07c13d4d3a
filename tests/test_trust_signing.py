"""Ed25519 signing of commands and policies; the agent's gate refuses unsigned, altered and replayed ones."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import protocol
from common import signing
from common.signing import ReplayGuard, SignatureError


@pytest.fixture
def keys(tmp_path: Path) -> tuple[object, str]:
    pub = signing.ensure_keypair(tmp_path / "k.key", [], [])
    return signing.load_private(tmp_path / "k.key"), pub


def guard() -> ReplayGuard:
    store: dict[str, str] = {}

    def get(key: str, default: str | None = None) -> str | None:
        return store.get(key, default)

    return ReplayGuard(get, store.__setitem__)


def command() -> dict:
    t = signing._now()
    return protocol.make_command("c-1", "message", {"text": "下课"}, t, t + timedelta(minutes=10))


def test_signed_command_verifies_and_any_change_breaks_it(keys: tuple[object, str]) -> None:
    key, pub = keys
    signed = signing.sign(command(), key)
    assert signed["sig"].startswith("ed25519:")
    assert signing.verify(signed, pub) is signed
    protocol.validate_command(signed)  # still a valid v1 command: sig is an extra key
    for change in ({"kind": "shutdown"}, {"args": {"text": "x"}}, {"expires": "2099-01-01T00:00:00+08:00"}):
        with pytest.raises(SignatureError, match="does not verify"):
            signing.verify({**signed, **change}, pub)


def test_wrong_key_unsigned_and_garbage_are_refused(keys: tuple[object, str], tmp_path: Path) -> None:
    key, pub = keys
    other_pub = signing.ensure_keypair(tmp_path / "other.key", [], [])
    signed = signing.sign(command(), key)
    with pytest.raises(SignatureError, match="not the pinned key"):
        signing.verify(signed, other_pub)
    with pytest.raises(SignatureError, match="unsigned"):
        signing.verify(command(), pub)
    for bad in ("ed25519:abc", "rsa:x:y", f"ed25519:{signed['sig'].split(':')[1]}:!!!"):
        with pytest.raises(SignatureError):
            signing.verify({**signed, "sig": bad}, pub)


def test_replayed_and_expired_commands_are_refused(keys: tuple[object, str]) -> None:
    key, pub = keys
    g = guard()
    signed = signing.sign(command(), key)
    assert signing.accept(signed, pub, g) == signed
    with pytest.raises(SignatureError, match="replay"):
        signing.accept(signed, pub, g)
    t = signing._now() - timedelta(hours=2)
    old = signing.sign(protocol.make_command("c-2", "refresh_inventory", {}, t, t + timedelta(minutes=5)), key)
    with pytest.raises(SignatureError, match="expired"):
        signing.accept(old, pub, g)


def test_older_policy_is_a_replay(keys: tuple[object, str]) -> None:
    key, pub = keys
    g = guard()
    now = signing._now()
    old = signing.sign({"idle_minutes": 5}, key, now=now - timedelta(days=1))
    new = signing.sign({"idle_minutes": 10}, key, now=now)
    signing.accept(new, pub, g, kind="policy")
    signing.accept(new, pub, g, kind="policy")  # the retained copy again on reconnect: fine
    with pytest.raises(SignatureError, match="older"):
        signing.accept(old, pub, g, kind="policy")


def test_without_a_pinned_key_objects_pass(keys: tuple[object, str]) -> None:
    assert signing.accept(command(), None, guard())["id"] == "c-1"


def test_agent_config_rejects_a_bad_command_key() -> None:
    from agent.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="command_key"):
        load_config(None, {"school": "s1", "device": "pc-1", "command_key": "not-a-key"}, environ={})
