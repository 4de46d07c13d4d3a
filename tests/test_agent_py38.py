"""The agent and what it imports run on Python 3.8 (Windows 7 classroom PCs): checked statically."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PY38_FILES = ["agent", "protocol", "common", "bbt/__init__.py",
              "bbt/cli.py", "bbt/cli_agent.py", "bbt/__main__.py"]


def vermin(*paths: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("vermin"))  # the console script (no vermin.__main__)
    return subprocess.run([exe, "-t=3.8-", "--no-tips", "--violations",
                           "--eval-annotations", "--no-parse-comments", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_agent_code_needs_nothing_newer_than_python_38() -> None:
    r = vermin(*PY38_FILES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Minimum required versions" in r.stdout


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
    root = Path(ROOT)
    files = [str(p) for f in PY38_FILES for p in ([root / f] if f.endswith(".py") else (root / f).rglob("*.py"))]
    r = subprocess.run([py, "-c", "import sys, ast\nfor f in sys.argv[1:]:\n"
                        "    ast.parse(open(f, encoding='utf-8').read(), f)"] + files,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
