"""Input idle time: how long since the last keyboard/mouse/touch input (never what was typed).

Platform sources sit behind ``IdleSource`` so that tests can use a fake at the OS boundary.
"""
from __future__ import annotations

import os
from typing import Optional


class IdleSource:
    """Returns seconds since the last input, or None when it cannot be known."""

    def idle_seconds(self) -> Optional[float]:
        return None


class EnvIdleSource(IdleSource):
    """Reads the idle time a test or helper wrote to a file (BBT_AGENT_IDLE_FILE)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def idle_seconds(self) -> Optional[float]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return float(f.read().strip())
        except (OSError, ValueError):
            return None


def default_source() -> IdleSource:
    path = os.environ.get("BBT_AGENT_IDLE_FILE")
    if path:
        return EnvIdleSource(path)
    return IdleSource()
