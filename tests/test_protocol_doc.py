"""docs/protocol.md says what the code does: event types and their keys, import columns and headers, the usage
rule's statuses, every /api/v1 route with its roles, every `bbt` command; every "protocol.md §n" citation resolves,
and the README names every top-level folder and every document."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click

import protocol
from protocol import v1
from tests.helpers import ROOT

DOC = Path(ROOT) / "docs" / "protocol.md"
TICKED = re.compile(r"`([^`]+)`")
CITATION = re.compile(r"protocol\.md §(\d+)")


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def section(n: int) -> str:
    """The text of "## n. ..." up to the next "## " heading."""
    m = re.search(rf"^## {n}\. .*?(?=^## |\Z)", doc(), flags=re.M | re.S)
    assert m, f"docs/protocol.md has no section {n}"
    return m.group(0)


def table(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``### heading``: {first ticked word of the first cell: cells}."""
    m = re.search(rf"^### {re.escape(heading)}\n(.*?)(?=^### |\Z)", text, flags=re.M | re.S)
    assert m, f"no '### {heading}' in docs/protocol.md"
    out: dict[str, list[str]] = {}
    for line in m.group(1).splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        first = TICKED.findall(cells[0]) if cells else []
        if first:
            out[first[0]] = cells
    return out


def ticked(cell: str) -> set[str]:
    return set(TICKED.findall(cell))


def tracked(*suffixes: str) -> list[str]:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [f for f in files.split("\n") if f and f.endswith(suffixes)]


def test_the_sections_are_there() -> None:
    heads = re.findall(r"^## (\d+)\. ", doc(), flags=re.M)
    assert heads == ["1", "2", "3", "4", "5", "6"]


# -- §1 the wire ---------------------------------------------------------------------------------

def test_every_event_type_with_its_keys_and_values() -> None:
    rows = table(section(1), "Event types")
    assert set(rows) == set(protocol.EVENT_TYPES), "document exactly the types protocol/ accepts"
    for etype, (required, types, enums) in v1._SPECS.items():
        cells = rows[etype]
        assert ticked(cells[1]) >= set(required), f"{etype}: required keys {required}"
        row = " ".join(cells)
        missing = [k for k in types if f"`{k}`" not in row]
        assert not missing, f"{etype}: keys {missing} are checked by protocol/ but not documented"
        values = [f'"{v}"' for vs in enums.values() for v in vs if f'"{v}"' not in row]
        assert not values, f"{etype}: allowed values {values} not documented"


def test_every_rejection_code() -> None:
    sources = [Path(ROOT, "protocol", n) for n in ("v1.py", "usb.py")] + [Path(ROOT, "collector", "devices",
                                                                               "ingest.py")]
    codes = {c for p in sources for c in re.findall(r'(?:Rejected\(|code=)"(\w+)"', p.read_text(encoding="utf-8"))}
    assert {"bad_topic", "unknown_type", "internal"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in section(1))
    assert not missing, f"rejection codes not in protocol.md §1: {missing}"


def test_policy_commands_and_versions() -> None:
    s1 = section(1)
    policy = table(s1, "Policy object")
    assert set(protocol.DEFAULT_POLICY) | {"usb"} <= set(policy)
    assert all(f"`{k}`" in s1 or f'"{k}"' in s1 for k in (*protocol.DEFAULT_USB, *protocol.DEFAULT_POLICY["software"]))
    assert set(table(s1, "Command object")) == set(protocol.COMMAND_KINDS)
    versions = table(s1, "Wire versions")
    assert protocol.WIRE_VERSION in versions, f"wire version {protocol.WIRE_VERSION} is not in the table"
    for etype in protocol.ISOLATED_TYPES:
        assert any(f"`{etype}`" in row[1] for row in versions.values()), f"{etype}: the version that added it"
    assert f"{protocol.MAX_PAYLOAD // 1024} KiB" in s1 and f"1 to {protocol.MAX_BATCH}" in s1
    assert protocol.ID_PATTERN in s1


# -- §2 imports ----------------------------------------------------------------------------------

def test_import_kinds_and_columns() -> None:
    from collector.school.import_columns import KINDS

    rows = table(section(2), "Kinds and columns")
    assert set(rows) == set(KINDS)
    for kind, (required, optional) in KINDS.items():
        assert ticked(rows[kind][1]) == set(required), f"{kind}: required columns"
        assert ticked(rows[kind][2]) == set(optional), f"{kind}: optional columns"


def test_every_accepted_header() -> None:
    from collector.school.import_columns import COLUMNS

    rows = table(section(2), "Column headers")
    assert set(rows) == set(COLUMNS)
    for col, (zh, others) in COLUMNS.items():
        assert ticked(rows[col][1]) == {zh}, f"{col}: Chinese header"
        assert ticked(rows[col][2]) == set(others), f"{col}: other accepted headers"


def test_file_formats_and_values() -> None:
    from collector.school.readers import ENCODING_NOTE, SUFFIXES
    from collector.school.school_imports import CAL_KINDS, WEEKS

    s2 = section(2)
    assert all(f"`{s}`" in s2 for s in SUFFIXES), SUFFIXES
    assert all(en.split(" ")[0] in s2 for _zh, en in ENCODING_NOTE.values())
    assert all(k in s2 for k in set(CAL_KINDS.values()) | set(WEEKS.values()))


# -- §3 the usage rule ---------------------------------------------------------------------------

def test_usage_rule() -> None:
    from collector.lessons import usage_settings
    from collector.lessons.attribution import NEVER_EXCUSES, REVIEWS, STATUS_ZH, STATUSES

    s3 = section(3)
    rows = {k: cells for k, cells in re.findall(r"^\| `(\w+)` \| (.*)$", s3, flags=re.M)}
    assert set(rows) == set(STATUSES)
    assert all(rows[s].startswith(STATUS_ZH[s]) for s in STATUSES)
    assert all(f"`{c}`" in s3 for c in NEVER_EXCUSES), NEVER_EXCUSES
    assert all(f'"{r}"' in s3 or r in s3 for r in REVIEWS)
    assert all(f"`{k}`" in s3 for k in usage_settings.DEFAULTS)
    defaults = usage_settings.DEFAULTS
    assert f"**{defaults['threshold']:.2f}**" in s3 and f"(default {defaults['min_use_minutes']:g})" in s3


# -- §4 the HTTP API -----------------------------------------------------------------------------

def api_routes(db_path: str) -> dict[str, tuple[str, ...]]:
    """'METHOD /api/v1/path/{arg}' -> the roles its view declares."""
    from dashboard import create_app

    app = create_app({"BBT_DB": db_path, "TESTING": True})
    out = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                out[f"{method} {path}"] = getattr(app.view_functions[rule.endpoint], "_bbt_roles", ())
    return out


def doc_routes() -> dict[str, set[str]]:
    from dashboard.access import PUBLIC
    from dashboard.users import ROLES

    out = {}
    for key, cells in table(section(4), "Routes").items():
        roles = {r.strip() for r in cells[1].split(",")}
        out[key.split("?")[0]] = set(ROLES) if roles == {"any role"} else {PUBLIC} if roles == {"public"} else roles
    return out


def test_every_route_with_its_roles(tmp_path: Path) -> None:
    served = api_routes(str(tmp_path / "bbt.db"))
    documented = doc_routes()
    assert len(served) > 20
    assert sorted(set(served) - set(documented)) == [], "routes served but not in protocol.md §4"
    assert sorted(set(documented) - set(served)) == [], "routes in protocol.md §4 that the app does not serve"
    wrong = {r: (sorted(documented[r]), sorted(roles)) for r, roles in served.items() if set(roles) != documented[r]}
    assert not wrong, f"roles in protocol.md §4 differ from the views' @allow (doc, code): {wrong}"


def test_the_rate_rows_keys() -> None:
    from collector.rates import usage

    row = table(section(4), "Routes")["GET /api/v1/usage/teachers?school=S&week=W"][2]
    keys = set(usage.rate_dict(usage.make_rate("x", 1, 1, 0.6), "teacher"))
    assert {k for k in keys if f'"{k}"' not in row} == set()


# -- §5 the command line -------------------------------------------------------------------------

def commands() -> dict[str, click.Command]:
    from bbt.cli import main

    ctx = click.Context(main)
    out: dict[str, click.Command] = {}

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, f"{path} {name}")
        else:
            out[path] = cmd
    walk(main, "bbt")
    return out


def test_every_command() -> None:
    s5 = section(5)
    cmds = commands()
    assert len(cmds) > 40
    missing = sorted(p for p in cmds if not re.search(rf"`{re.escape(p)}[` ]", s5))
    assert not missing, f"commands not in protocol.md §5: {missing}"


def test_documented_options_exist() -> None:
    cmds = commands()
    for span in TICKED.findall(section(5)):
        if not span.startswith("bbt "):
            continue
        words = span.split()
        path = max((" ".join(words[:i]) for i in range(2, len(words) + 1) if " ".join(words[:i]) in cmds),
                   key=len, default=None)
        assert path is not None, f"`{span}` names no command"
        opts = {o for p in cmds[path].params for o in p.opts}
        unknown = [o for o in re.findall(r"--[a-z-]+", span) if o not in opts]
        assert not unknown, f"`{span}`: {path} has no option {unknown}"


# -- citations and the README --------------------------------------------------------------------

def test_every_citation_resolves() -> None:
    sections = set(re.findall(r"^## (\d+)\. ", doc(), flags=re.M))
    found: dict[str, set[str]] = {}
    for name in tracked(".py", ".md", ".conf", ".sh", ".html", ".toml", ".ini", ".json"):
        for n in CITATION.findall(Path(ROOT, name).read_text(encoding="utf-8", errors="replace")):
            found.setdefault(n, set()).add(name)
    assert sum(len(f) for f in found.values()) >= 20, "the citation pattern no longer matches the code's citations"
    missing = {n: sorted(f) for n, f in found.items() if n not in sections}
    assert not missing, f"protocol.md sections cited but missing: {missing}"


def readme_table(heading: str) -> str:
    text = Path(ROOT, "README.md").read_text(encoding="utf-8")
    m = re.search(rf"^## {heading}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert m, f"README.md has no '## {heading}'"
    return m.group(1)


def test_readme_layout_names_every_top_level_folder() -> None:
    folders = {f.split("/")[0] for f in tracked("") if "/" in f and not f.startswith(".")}
    named = {t.rstrip("/") for t in TICKED.findall(readme_table("Layout")) if t.endswith("/") and t.count("/") == 1}
    assert folders - named == set(), f"README's Layout table misses {sorted(folders - named)}"


def test_readme_lists_every_document() -> None:
    docs = {f for f in tracked(".md") if f.startswith("docs/")}
    listed = set(TICKED.findall(readme_table("Documentation")))
    assert docs - listed == set(), f"README's Documentation table misses {sorted(docs - listed)}"
