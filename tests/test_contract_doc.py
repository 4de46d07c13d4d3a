"""The code cites the external contract as "CONTRACT §n": docs/CONTRACT.md holds it, and every cited section exists."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOC = Path(ROOT) / "docs" / "CONTRACT.md"
SHARED = Path("/work/shared/CONTRACT.md")  # the copy docs/CONTRACT.md is kept in sync from, where present
CITATION = re.compile(r"CONTRACT(?:\.md)? §(\d+)")


def sections() -> set[str]:
    return set(re.findall(r"^## (\d+)\. ", DOC.read_text(encoding="utf-8"), flags=re.M))


def citations() -> dict[str, set[str]]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found: dict[str, set[str]] = {}
    for name in files:
        if name == "docs/CONTRACT.md" or not name.endswith((".py", ".md", ".conf", ".sh", ".html")):
            continue
        for n in CITATION.findall((Path(ROOT) / name).read_text(encoding="utf-8", errors="replace")):
            found.setdefault(n, set()).add(name)
    return found


def test_the_contract_is_in_the_repository_with_its_version() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith("> The external contract of bbt, version 1.1")
    assert {"1", "2", "3", "4", "5"} <= sections()


def test_every_cited_section_exists() -> None:
    cited = citations()
    assert len(cited) >= 3, "the citation pattern no longer matches the code's citations"
    missing = {n: sorted(files) for n, files in cited.items() if n not in sections()}
    assert not missing, f"CONTRACT sections cited but not in docs/CONTRACT.md: {missing}"


def test_in_sync_with_the_shared_copy() -> None:
    if not SHARED.is_file():
        pytest.skip("no shared copy of the contract on this machine")
    body = DOC.read_text(encoding="utf-8").split("\n", 2)[2]  # after the note and its blank line
    assert body == SHARED.read_text(encoding="utf-8"), "docs/CONTRACT.md differs from the shared copy: copy it again"
