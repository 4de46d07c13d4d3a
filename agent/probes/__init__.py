"""Probes: one small module per thing measured, registered in PROBES.

A probe is a callable taking the agent context and returning a list of (type, data) events
to emit (possibly empty) plus, for heartbeat fields, a dict merged into the next heartbeat.
A probe that raises is logged and skipped; it never stops the agent.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Tuple

log = logging.getLogger(__name__)

Emit = List[Tuple[str, Dict[str, Any]]]


def run_probe(name: str, fn: Callable[[], Any], default: Any = None) -> Any:
    try:
        return fn()
    except Exception as e:  # a broken probe is skipped, never fatal
        log.warning("probe %s failed: %s", name, e)
        return default
