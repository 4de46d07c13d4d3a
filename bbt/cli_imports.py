"""`bbt import`: print the plan (what is added, removed, changed; warnings) and apply it."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import click


def run(db: Any, kind: str, file: str, school: str, *, replace: bool, dry_run: bool, create_school: bool) -> None:
    from collector.school.import_report import plan_lines
    from collector.school.imports import apply_plan, import_warnings, plan_import

    with db.transaction():  # the comparison and the writing see the same store
        plan = plan_import(db, kind, school, file, replace=replace, create_school=create_school)
        for line in plan_lines(plan, "en"):
            click.echo(line, err=line.startswith("warning"))
        if dry_run:
            click.echo(f"dry run: nothing written ({kind}, {school})")
            return
        n = apply_plan(db, plan)
    created = " (new school)" if plan.new_school else ""
    click.echo(f"imported {n} {kind} rows for {school}{created}")
    for w in import_warnings(db, kind, school):
        click.echo(f"warning: {w}", err=True)


def write_template(kind: str, out: Optional[str]) -> None:
    from collector.school.import_columns import KINDS
    from collector.school.import_templates import template_name, template_xlsx

    if kind not in KINDS:
        raise click.BadParameter(f"{kind!r} is not one of {', '.join(KINDS)}", param_hint="KIND")
    data = template_xlsx(kind)
    if out is None and sys.stdout.isatty():
        out = template_name(kind)
    if out:
        Path(out).write_bytes(data)
        click.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.buffer.write(data)
