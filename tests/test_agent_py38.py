"""The agent and what it imports run on Python 3.8 (Windows 7 classroom PCs): checked statically.

Which files that is, is computed here from the imports (tests/imports.py), not listed by hand."""
from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import ROOT
from tests.imports import reachable

ROOT_PATH = Path(ROOT)
# What starts on a classroom PC: the agent (service, Windows service, session helper, frozen exe's main)
# and the `bbt agent ...` commands.
AGENT_ENTRIES = ["agent/__main__.py", "agent/service.py", "agent/winservice.py", "agent/helper.py",
                 "bbt/__main__.py", "bbt/cli.py", "bbt/cli_agent.py"]
# The command line's shell: its server commands import server modules inside the commands (and bbt/cli.py
# loads command modules by name, skipping server ones on Python < 3.11), so only what runs at import is followed.
CLI_SHELL = ["bbt/__main__.py", "bbt/cli.py"]
SERVER = ("collector", "alerts", "dashboard")


def agent_files() -> list[str]:
    found = reachable([ROOT_PATH / f for f in AGENT_ENTRIES], shallow=[ROOT_PATH / f for f in CLI_SHELL])
    return sorted(p.relative_to(ROOT_PATH).as_posix() for p in found)


def vermin(*paths: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("vermin"))  # the console script (no vermin.__main__)
    return subprocess.run([exe, "-t=3.8-", "--no-tips", "--violations",
                           "--eval-annotations", "--no-parse-comments", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_agent_reaches_the_floor_and_nothing_of_the_server() -> None:
    files = agent_files()
    for needed in ("agent/runner.py", "agent/probes/__init__.py", "protocol/v1.py", "common/__init__.py",
                   "common/errors.py", "common/mqttconf.py", "common/signing.py", "common/enrolwire.py",
                   "bbt/__init__.py", "bbt/cli_agent.py"):
        assert needed in files, f"{needed} is not reached from {AGENT_ENTRIES}: the import walk is broken"
    server = [f for f in files if f.startswith(SERVER)]
    assert not server, f"the agent imports server code (Python 3.11 only): {server}"
    missing = [e for e in AGENT_ENTRIES if not (ROOT_PATH / e).is_file()]
    assert not missing, f"agent entry points that no longer exist: {missing}"


def test_agent_code_needs_nothing_newer_than_python_38() -> None:
    files = agent_files()
    r = vermin(*files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Minimum required versions" in r.stdout


def test_ruff_keeps_py38_syntax_in_every_agent_file() -> None:
    """ruff targets 3.11; its pyupgrade rules (UP) would rewrite agent files into 3.9+ syntax unless ignored."""
    conf = tomllib.loads((ROOT_PATH / "pyproject.toml").read_text(encoding="utf-8"))
    ignores = conf["tool"]["ruff"]["lint"]["per-file-ignores"]
    globs = [g for g, rules in ignores.items() if "UP" in rules]
    uncovered = [f for f in agent_files() if not any(fnmatch.fnmatch(f, g) for g in globs)]
    assert not uncovered, f"add these to [tool.ruff.lint.per-file-ignores] with 'UP': {uncovered}"


def test_the_check_catches_newer_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('import zoneinfo\nprint("x".removeprefix("x"))\n')  # both Python 3.9
    r = vermin(str(bad))
    assert r.returncode != 0 and "zoneinfo" in r.stdout and "removeprefix" in r.stdout


def test_compiles_under_a_real_python_38_when_present() -> None:
    py38 = shutil.which("python3.8")
    cands = [str(p) for p in Path("~/.pyenv/versions").expanduser().glob("3.8*/bin/python")] + ([py38] if py38 else [])
    py = next((c for c in cands if subprocess.run([c, "-c", "import sys; assert sys.version_info[:2] == (3, 8)"],
                                                  capture_output=True, check=False).returncode == 0), None)
    if py is None:
        pytest.skip("no Python 3.8 on this machine (the static check above still holds)")
    files = [str(ROOT_PATH / f) for f in agent_files()]
    r = subprocess.run([py, "-c", "import sys, ast\nfor f in sys.argv[1:]:\n"
                        "    ast.parse(open(f, encoding='utf-8').read(), f)"] + files,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
