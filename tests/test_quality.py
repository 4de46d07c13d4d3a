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
