"""Every setting and every command-line option is documented in docs/settings.md."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click

from agent.config import AgentConfig
from bbt.cli import main

DOC = (Path(__file__).resolve().parent.parent / "docs" / "settings.md").read_text(encoding="utf-8")
DOCUMENTED = set(re.findall(r"`([^`]+)`", DOC))
TOKENS = {t for item in DOCUMENTED for t in re.split(r"[\s,]+", item)}


def walk(cmd: click.Command, path: str) -> list[tuple[str, str]]:
    out = [(path, opt) for p in cmd.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out += walk(sub, f"{path} {name}")
    return out


def test_every_agent_setting_documented() -> None:
    missing = [f.name for f in dataclasses.fields(AgentConfig) if f.name not in DOCUMENTED]
    assert not missing, f"agent settings missing from docs/settings.md: {missing}"


def test_every_cli_option_documented() -> None:
    options = walk(main, "bbt")
    assert len(options) > 20
    missing = sorted({f"{cmd} {opt}" for cmd, opt in options if opt not in TOKENS and opt != "--help"})
    assert not missing, f"options missing from docs/settings.md: {missing}"


def test_every_environment_variable_documented() -> None:
    root = Path(__file__).resolve().parent.parent
    used: set[str] = set()
    for pkg in ("agent", "bbt", "collector", "dashboard"):
        for f in (root / pkg).rglob("*.py"):
            used |= set(re.findall(r"""["'](BBT_[A-Z_]+)["']""", f.read_text(encoding="utf-8")))
    used -= {"BBT_AGENT_"}
    missing = sorted(v for v in used if v not in TOKENS and not v.startswith("BBT_AGENT_"))
    assert not missing, f"environment variables missing from docs/settings.md: {missing}"
