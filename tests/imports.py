"""Static walk of the project's imports (ast): who imports whom, and what an entry point reaches.

Follows ``import x`` and ``from x import y`` anywhere in a file (function-level imports too), resolves
relative imports, and keeps only modules of the project's own packages. Strings handed to importlib are
not followed (bbt/cli.py loads its command modules that way, on purpose)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterable, Iterator

from tests.helpers import ROOT

PACKAGES = ("common", "protocol", "agent", "collector", "alerts", "dashboard", "bbt")


def module_name(path: Path, root: Path = Path(ROOT)) -> str:
    parts = list(path.resolve().relative_to(root.resolve()).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking(test: ast.expr) -> bool:
    """The test of ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``), whose body never runs."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _nodes(tree: ast.AST, module_level_only: bool, runtime_only: bool = False) -> Iterator[ast.AST]:
    """All nodes, or (module_level_only) those that run at import time: function bodies are skipped;
    with ``runtime_only``, the bodies of ``if TYPE_CHECKING:`` blocks are skipped too."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        children = list(ast.iter_child_nodes(node))
        if runtime_only and isinstance(node, ast.If) and _type_checking(node.test):
            children = [node.test, *node.orelse]
        todo.extend(c for c in children if not (module_level_only and
                                                isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))))


def imported_names(path: Path, root: Path = Path(ROOT), module_level_only: bool = False,
                   runtime_only: bool = False) -> set[str]:
    """Every module name ``path`` imports (absolute; for ``from a import b`` both ``a`` and ``a.b``);
    with ``module_level_only``, only the imports that run when the module is imported; with ``runtime_only``,
    not those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    here = module_name(path, root).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    names: set[str] = set()
    for node in _nodes(tree, module_level_only, runtime_only):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base:
                names.add(base)
            names.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return names


def module_file(name: str, root: Path = Path(ROOT)) -> Path | None:
    """The project file of module ``name``, or None when it is not one of the project's modules."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = root.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def reachable(entries: Iterable[Path], root: Path = Path(ROOT), shallow: Iterable[Path] = ()) -> set[Path]:
    """The project files that importing ``entries`` can load (their packages' __init__ files included),
    following every import, function-level ones too, except in ``shallow`` files, where only the imports
    that run at import time are followed."""
    shallow_files = {p.resolve() for p in shallow}
    todo = [p.resolve() for p in entries]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        imports = imported_names(path, root, module_level_only=path in shallow_files)
        for name in [*with_parents(module_name(path, root)), *imports]:
            for part in with_parents(name):
                found = module_file(part, root)
                if found is not None and found.resolve() not in seen:
                    todo.append(found.resolve())
    return seen


# -- the package graph: which package imports which, for the no-cycle rule ---------------------

def _target(name: str, root: Path) -> str | None:
    """The project module that importing ``name`` loads: its longest prefix that is a module or package."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if module_file(".".join(parts[:i]), root) is not None:
            return ".".join(parts[:i])
    return None


def runtime_imports(path: Path, root: Path = Path(ROOT)) -> set[str]:
    """The project modules ``path`` can load when it runs: function-level imports included, imports under
    ``if TYPE_CHECKING:`` not (``from a import b`` loads a, and a.b when that is a module)."""
    names = imported_names(path, root, runtime_only=True)
    return {t for t in (_target(n, root) for n in names) if t is not None}


def package_of(module: str, root: Path = Path(ROOT)) -> str:
    """The package that holds ``module`` (a package is its own)."""
    found = module_file(module, root)
    return module if found is not None and found.name == "__init__.py" else module.rpartition(".")[0]


def package_graph(root: Path = Path(ROOT)) -> dict[str, set[str]]:
    """Each of the project's packages (sub-packages as their own nodes) -> the other packages it imports."""
    graph: dict[str, set[str]] = {}
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            here = package_of(module_name(path, root), root)
            edges = graph.setdefault(here, set())
            edges.update(package_of(m, root) for m in runtime_imports(path, root))
            edges.discard(here)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One shortest cycle through each group of packages that import each other, e.g. ['a', 'b', 'a']."""
    found: list[list[str]] = []
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        paths = {start: [start]}
        todo = [start]
        while todo:
            node = todo.pop(0)
            for nxt in sorted(graph.get(node, ())):
                if nxt == start:
                    found.append([*paths[node], start])
                    done.update(paths[node])
                    todo = []
                    break
                if nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    todo.append(nxt)
    return found
