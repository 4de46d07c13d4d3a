"""Sending commands and policies from the dashboard over MQTT (collector.devices.commands / collector.devices.policy).

The command or policy is stored first; it is then published at once with a short-lived client
to the server's broker (app config BROKER). If the broker cannot be reached it stays pending
and the collector's maintenance loop publishes it later.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from flask import current_app

from collector.db import Database
from collector.devices import commands, policy, school_keys
from collector.devices.mqttout import PublishError, Send, publish_all

log = logging.getLogger(__name__)


def _sender() -> tuple[Send, Callable[[], None]] | None:
    """A Send that batches messages, and a flush that publishes them (None without a broker)."""
    cfg = current_app.config.get("BROKER")
    if cfg is None:
        return None
    queued: list[tuple[str, bytes, bool]] = []

    def send(topic: str, payload: bytes, retain: bool) -> None:
        queued.append((topic, payload, retain))

    def flush() -> None:
        if queued:
            publish_all(cfg, queued, timeout=5)
    return send, flush


def send_commands(db: Database, kind: str, args: dict[str, Any], targets: list[tuple[str, str]],
                  expires_in: float = commands.DEFAULT_EXPIRES_S) -> tuple[list[dict[str, Any]], bool]:
    """Create the commands and try to publish them now; (created, published now)."""
    created = commands.create(db, kind, args, targets, expires_in)
    return created, publish_created(db, created)


def publish_created(db: Database, created: list[dict[str, Any]]) -> bool:
    """Publish stored commands now (signed with their school's key); False when they stay pending."""
    s = _sender()
    if s is None:
        return False
    send, flush = s
    for c in created:
        commands.publish(send, c["school"], c["device"], c["command"], school_keys.private_key(db, c["school"]))
    try:
        flush()
    except PublishError as e:
        log.warning("commands stay pending (the maintenance loop will publish them): %s", e)
        return False
    for c in created:
        commands.mark_sent(db, c["command"]["id"])
    return True


def save_policy(db: Database, school: str, obj: Any) -> tuple[dict[str, Any], bool]:
    """Store a school's policy and try to publish it now (retained); (stored view, published now)."""
    stored = policy.set_policy(db, school, obj, source="policy")
    s = _sender()
    if s is None:
        return stored, False
    send, flush = s
    key = school_keys.private_key(db, school)
    policy.publish(send, school, policy.as_published(db, school, stored["policy"], key), key)
    try:
        flush()
    except PublishError as e:
        log.warning("policy stays unpublished (the maintenance loop will publish it): %s", e)
        return stored, False
    policy.mark_published(db, school, stored["version"])
    return stored, True
