"""Every user-visible string of the dashboard has an English translation, and the compiled catalog is current."""
from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def test_translations_complete_and_compiled() -> None:
    r = subprocess.run([sys.executable, "scripts/i18n.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
