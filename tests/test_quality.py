"""ruff and mypy are clean over the whole tree, the layers import only downwards, and no packages import
each other in a cycle."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT
from tests.imports import cycles, imported_names, module_name, package_graph


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_clean() -> None:
    r = run("ruff", "check", "--no-cache", ".")
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean() -> None:
    r = run("mypy", ".")
    assert r.returncode == 0, r.stdout + r.stderr


# -- layers: lower layers never import upper ones ---------------------------------------------

FLOOR = {"collector", "alerts", "dashboard", "bbt"}
# protocol/ is the ground floor (stdlib only, imports nothing of ours); common/ stands on it (signing uses its times).
FORBIDDEN = {"common": FLOOR | {"agent"}, "protocol": FLOOR | {"common", "agent"}, "agent": FLOOR,
             "collector": {"alerts", "dashboard", "bbt"}, "alerts": {"dashboard", "bbt"}, "dashboard": {"bbt"}}
# Known, named and expiring exceptions ('file: imports module'); the test below fails once an entry is no longer
# needed, so it cannot linger. None today: the composition root lives in bbt/server.py.
KNOWN_UPWARD: set[str] = set()


def upward_imports(path: Path, root: Path = Path(ROOT)) -> list[str]:
    """``path``'s imports of a package above its own layer, as 'file: module' lines."""
    layer = module_name(path, root).split(".")[0]
    banned = FORBIDDEN.get(layer, set())
    return sorted(f"{path.relative_to(root)}: imports {name}" for name in imported_names(path, root)
                  if name.split(".")[0] in banned)


def test_lower_layers_never_import_upper_ones() -> None:
    root = Path(ROOT)
    files = [f for pkg in FORBIDDEN for f in sorted((root / pkg).rglob("*.py"))]
    assert len(files) > 100
    found = {line for f in files for line in upward_imports(f)}
    assert not KNOWN_UPWARD - found, f"no longer imported, drop from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - found)}"
    bad = sorted(found - KNOWN_UPWARD)
    assert not bad, "upward imports (see FORBIDDEN in tests/test_quality.py):\n" + "\n".join(bad)


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "collector").mkdir()
    (tmp_path / "agent").mkdir()
    mod = tmp_path / "collector" / "x.py"
    mod.write_text("import protocol\nfrom common.errors import BbtError\n\n"
                   "def f():\n    from dashboard import app\n    from bbt import cli\n")
    assert upward_imports(mod, tmp_path) == [f"collector/x.py: imports {m}"
                                             for m in ("bbt", "bbt.cli", "dashboard", "dashboard.app")]
    rel = tmp_path / "agent" / "y.py"
    rel.write_text("from . import config\nfrom ..collector import store\n")
    assert upward_imports(rel, tmp_path) == ["agent/y.py: imports collector", "agent/y.py: imports collector.store"]
    (tmp_path / "alerts").mkdir()
    below = tmp_path / "collector" / "z.py"
    below.write_text("from alerts import engine\n")
    assert upward_imports(below, tmp_path) == [f"collector/z.py: imports {m}" for m in ("alerts", "alerts.engine")]


# -- no import cycle between packages (sub-packages are packages of their own) ----------------

def cycle_lines(root: Path = Path(ROOT)) -> list[str]:
    return [" -> ".join(cycle) for cycle in cycles(package_graph(root))]


def test_no_import_cycle_between_packages() -> None:
    graph = package_graph(Path(ROOT))
    assert {"agent", "agent.probes", "collector", "collector.migrations", "dashboard", "bbt"} <= set(graph)
    assert "common" in graph["bbt"] and "collector" in graph["alerts"]
    found = cycle_lines()
    assert not found, "packages that import each other (move the shared code down, or type-only imports " \
                      "under `if TYPE_CHECKING:`):\n" + "\n".join(found)


def plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if parent.parts:
                (root / parent / "__init__.py").touch()
        path.write_text(text)


def test_the_cycle_check_names_a_planted_cycle(tmp_path: Path) -> None:
    plant(tmp_path, {"agent/runner.py": "from agent.probes import usage\n",
                     "agent/probes/usage.py": "def f():\n    from agent import pjlink\n",
                     "agent/pjlink.py": "import common\n",
                     "collector/x.py": "from collector.migrations import migrate\n",
                     "collector/migrations/__init__.py": "from typing import TYPE_CHECKING\n"
                                                         "if TYPE_CHECKING:\n    from collector.db import Database\n",
                     "common/__init__.py": ""})
    assert package_graph(tmp_path)["agent.probes"] == {"agent"}  # a function-level import counts
    assert package_graph(tmp_path)["collector.migrations"] == set()  # a type-only one does not
    assert cycle_lines(tmp_path) == ["agent -> agent.probes -> agent"]
    (tmp_path / "agent" / "probes" / "usage.py").write_text("from .. import config\n")
    (tmp_path / "agent" / "config.py").write_text("")
    assert cycle_lines(tmp_path) == ["agent -> agent.probes -> agent"]  # relative imports resolve too
    (tmp_path / "agent" / "probes" / "usage.py").write_text("import common\n")
    assert cycle_lines(tmp_path) == []


# -- the collector's foundation imports none of its sub-packages -------------------------------

COLLECTOR_FOUNDATION = ("audit", "codes", "db", "lease", "migrations", "pg", "sheets")


def foundation_imports(root: Path = Path(ROOT)) -> list[str]:
    """Imports of a collector sub-package by a foundation module (collector/*.py, collector/migrations/)."""
    col = root / "collector"
    subs = {p.parent.name for p in col.glob("*/__init__.py")} - set(COLLECTOR_FOUNDATION)
    files = [*col.glob("*.py"), *(col / "migrations").rglob("*.py")]
    return sorted(f"{f.relative_to(root)}: imports {name}" for f in files for name in imported_names(f, root)
                  if name.split(".")[0] == "collector" and name.split(".")[1:2] and name.split(".")[1] in subs)


def test_the_collector_foundation_imports_no_sub_package() -> None:
    col = Path(ROOT) / "collector"
    assert {"intake", "rates"} <= {p.parent.name for p in col.glob("*/__init__.py")}, "collector/ is split"
    strays = sorted({p.stem for p in col.glob("*.py")} - {"__init__", *COLLECTOR_FOUNDATION})
    assert not strays, f"collector modules outside the foundation belong in a sub-package: {strays}"
    found = foundation_imports()
    assert not found, "the collector's foundation imports a sub-package:\n" + "\n".join(found)


def test_the_foundation_check_catches_an_import(tmp_path: Path) -> None:
    plant(tmp_path, {"collector/intake/store.py": "from collector import db\n",
                     "collector/db.py": "def f():\n    from collector.intake import store\n",
                     "collector/migrations/__init__.py": "import collector.rates.usage\n",
                     "collector/rates/usage.py": ""})
    assert foundation_imports(tmp_path) == ["collector/db.py: imports collector.intake",
                                            "collector/db.py: imports collector.intake.store",
                                            "collector/migrations/__init__.py: imports collector.rates.usage"]


# -- the collector's sub-packages in layers: each imports only those before it in this order ----------

COLLECTOR_ORDER = ("devices", "lessons", "school", "intake", "rates", "operations")  # README's Layout table


def sub_package_upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a collector sub-package by one before it in COLLECTOR_ORDER (or by one not in it)."""
    rank = {f"collector.{name}": i for i, name in enumerate(COLLECTOR_ORDER)}
    return sorted(f"{pkg} imports {dep}" for pkg, deps in graph.items() if pkg.count(".") == 1
                  and pkg.startswith("collector.") and pkg != "collector.migrations" for dep in deps
                  if dep in rank and dep != pkg and rank.get(pkg, -1) <= rank[dep])


def test_the_collector_sub_packages_import_only_those_before_them() -> None:
    subs = {f"collector.{p.parent.name}" for p in (Path(ROOT) / "collector").glob("*/__init__.py")}
    assert subs - {"collector.migrations"} == {f"collector.{n}" for n in COLLECTOR_ORDER}, "COLLECTOR_ORDER is complete"
    bad = sub_package_upward(package_graph())
    assert not bad, "a collector sub-package imports one after it (see COLLECTOR_ORDER):\n" + "\n".join(bad)


def test_the_order_check_catches_an_import_of_a_later_sub_package() -> None:
    graph = {"collector.devices": {"collector", "collector.rates"}, "collector.rates": {"collector.devices"},
             "collector.extra": {"collector.devices"}}
    assert sub_package_upward(graph) == ["collector.devices imports collector.rates",
                                         "collector.extra imports collector.devices"]
