"""Schema migrations.

Each module ``mNNNN_name.py`` in this package defines ``VERSION`` (int), ``NAME`` and
``STATEMENTS`` (portable SQL, see collector.db). Areas own number ranges so that work on
different areas never collides: 1-99 core ingest, 100-199 school model and usage,
200-299 alerts and faults, 300-399 dashboard and auth, 400-499 district, 500-599 trust.
Migrations apply in version order, each in its own transaction, exactly once.
"""
from __future__ import annotations

import importlib
import pkgutil
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # collector imports this package; a runtime import back would be a cycle
    from collector.db import Database

TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY AUTOINCREMENT", "blob": "BLOB"},
    "postgresql": {"id": "BIGSERIAL PRIMARY KEY", "blob": "BYTEA"},
}


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def discover() -> list[Migration]:
    found: list[Migration] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("m"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        found.append(Migration(mod.VERSION, mod.NAME, tuple(mod.STATEMENTS)))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def applied(db: Database) -> set[int]:
    db.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
               "(version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied DOUBLE PRECISION NOT NULL)")
    return {r["version"] for r in db.query("SELECT version FROM schema_migrations")}


def migrate(db: Database) -> list[int]:
    """Apply every migration not yet applied; return the versions applied now."""
    done = applied(db)
    now_applied = []
    for m in discover():
        if m.version in done:
            continue
        with db.transaction():
            # re-check inside the lock: another collector may have just applied it
            if db.query("SELECT 1 AS x FROM schema_migrations WHERE version = ?", (m.version,)):
                continue
            for stmt in m.statements:
                db.execute(stmt.format(**TYPES[db.dialect]))
            db.execute("INSERT INTO schema_migrations (version, name, applied) VALUES (?, ?, ?)",
                       (m.version, m.name, time.time()))
        now_applied.append(m.version)
    return now_applied
