"""dashboard/ holds no SQL on the collector's tables: it reads them through collector functions
(collector.rates.queries, collector.devices.registry, collector.audit). The tables the dashboard owns are those
the migrations numbered 300-399 create (users, tokens, web sessions, login attempts, ...)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from collector import migrations

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_RANGE = range(300, 400)  # collector/migrations: "300-399 dashboard and auth"
VERB = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")
TABLE = re.compile(r'\b(?:FROM|INTO|JOIN|UPDATE)\s+"?([A-Za-z_][A-Za-z0-9_]*)')
CREATE = re.compile(r'CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"?([A-Za-z_][A-Za-z0-9_]*)', re.I)


def dashboard_tables() -> set[str]:
    """The tables created by the dashboard's migrations (read from the migrations, not listed here)."""
    return {name for m in migrations.discover() if m.version in DASHBOARD_RANGE
            for stmt in m.statements for name in CREATE.findall(stmt)}


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, text) of every string literal; an f-string's fixed parts joined, its fields as ``?``."""
    out: list[tuple[int, str]] = []
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "?"
                     for v in node.values]
            inside.update(id(v) for v in node.values)
            out.append((node.lineno, "".join(parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            out.append((node.lineno, node.value))
    return out


def foreign_sql(path: Path, owned: set[str]) -> list[str]:
    """``file:line: table`` for each SQL string in the file on a table not in ``owned``."""
    found = []
    for line, text in sorted(_strings(ast.parse(path.read_text(encoding="utf-8"), str(path)))):
        if not VERB.search(text):
            continue
        for table in TABLE.findall(text):
            if table not in owned and table.upper() != "SELECT":
                found.append(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line}: {table}")
    return found


def test_dashboard_migrations_are_read() -> None:
    owned = dashboard_tables()
    assert {"users", "tokens", "web_sessions", "login_attempts"} <= owned
    assert not owned & {"devices", "faults", "events", "schools", "audit"}


def test_dashboard_has_no_sql_on_collector_tables() -> None:
    owned = dashboard_tables()
    found = [hit for path in sorted((ROOT / "dashboard").glob("*.py")) for hit in foreign_sql(path, owned)]
    assert not found, ("SQL on tables the dashboard does not own (read them through collector.rates.queries, "
                       "collector.devices.registry or collector.audit):\n" + "\n".join(found))


def test_a_planted_query_is_caught(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text('"""Not SQL: select the week FROM the menu."""\n'
                       'def f(db, school):\n'
                       '    db.query("SELECT name FROM users WHERE school = ?", (school,))\n'
                       '    db.query("SELECT f.id, d.class FROM faults f "\n'
                       '             "LEFT JOIN devices d ON d.device = f.device WHERE f.school = ?", (school,))\n'
                       '    table = "events"\n'
                       '    return db.execute(f"UPDATE status_log SET t = ? WHERE device = {table!r}", ())\n',
                       encoding="utf-8")
    assert foreign_sql(planted, dashboard_tables()) == [
        f"{planted}:4: faults", f"{planted}:4: devices", f"{planted}:7: status_log"]
