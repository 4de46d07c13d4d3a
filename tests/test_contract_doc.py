"""docs/CONTRACT.md is the external contract 1.1, kept verbatim; docs/protocol.md, the project's own document, keeps
every name it promises, and nothing else in the repository cites the contract by section."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

DOC = Path(ROOT) / "docs" / "CONTRACT.md"
PROTOCOL = Path(ROOT) / "docs" / "protocol.md"
SHARED = Path("/work/shared/CONTRACT.md")  # the copy docs/CONTRACT.md is kept in sync from, where present
CONTRACT_CITATION = re.compile(r"\bCONTRACT(?:\.md)?(?:\s+1\.1|\s*§\s*\d|\))")
CITING_ALLOWED = {"docs/CONTRACT.md", "docs/protocol.md", "tests/test_contract_doc.py"}


def body() -> str:
    return DOC.read_text(encoding="utf-8").split("\n", 2)[2]  # after the note and its blank line


def test_the_contract_is_in_the_repository_with_its_version() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith("> The external contract of bbt, version 1.1")
    assert set(re.findall(r"^## (\d+)\. ", text, flags=re.M)) == {"1", "2", "3", "4", "5"}


def test_in_sync_with_the_shared_copy() -> None:
    if not SHARED.is_file():
        pytest.skip("no shared copy of the contract on this machine")
    assert body() == SHARED.read_text(encoding="utf-8"), "docs/CONTRACT.md differs from the shared copy: copy it again"


def test_nothing_cites_the_contract_by_section() -> None:
    """Code and documents cite "protocol.md §n" (tests/test_protocol_doc.py checks those resolve)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    found = []
    for name in files:
        if name in CITING_ALLOWED or not name.endswith((".py", ".md", ".conf", ".sh", ".html", ".toml", ".ini")):
            continue
        text = (Path(ROOT) / name).read_text(encoding="utf-8", errors="replace")
        found += [f"{name}: {m.group(0)}" for m in CONTRACT_CITATION.finditer(text)]
    assert not found, f"cite docs/protocol.md §n instead: {found}"


def promised_names(text: str) -> set[str]:
    """What the contract names in code spans: topics, keys, values, endpoints (method and path), commands."""
    names: set[str] = set()
    for span in re.findall(r"`([^`]+)`", text):
        if re.fullmatch(r"(GET|POST) \S+", span):
            names.add(span.split("?")[0])
        elif span.startswith("bbt "):
            names.add(" ".join(w for w in span.split()[:3] if re.fullmatch(r"[a-z-]+", w)))
        elif re.fullmatch(r"[\w/{}.-]+", span):
            names.add(span)
        names |= set(re.findall(r'"([a-z_]+)"', span))
    return names


def unnamed(text: str) -> str:
    """Path parameters without their names: they are not a promise ({id} and {ticket_id} are one path)."""
    return re.sub(r"\{\w+\}", "{}", text)


def test_the_protocol_keeps_every_name_the_contract_promises() -> None:
    """Compatibility: every topic, key, value, endpoint and command of the external contract is in protocol.md."""
    names = promised_names(body())
    assert {"bbt/v1/{school}/{device}/events", "GET /api/v1/usage/teachers", "awaiting_review", "bbt report week",
            "session_id", "substitutions"} <= names
    protocol = unnamed(PROTOCOL.read_text(encoding="utf-8"))
    missing = sorted(n for n in names if unnamed(n) not in protocol)
    assert not missing, f"named by the external contract but not by docs/protocol.md: {missing}"
