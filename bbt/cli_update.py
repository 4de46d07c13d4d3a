"""`bbt agent-update offer|show|withdraw`: the agent package offered to a school's PCs (self-update)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from bbt.cli import db_option, open_db


@click.group("agent-update")
def agent_update() -> None:
    """Agent self-update: offer a signed agent package to a school's PCs (docs/agent.md)."""


@agent_update.command("offer")
@click.argument("wheel", type=click.Path(dir_okay=False))
@click.option("--school", required=True)
@click.option("--percent", type=float, default=100.0, show_default=True,
              help="the share of the school's PCs that take it (the same PCs each time: a hash of the device id)")
@db_option
def offer_cmd(wheel: str, school: str, percent: float, db_url: Optional[str]) -> None:
    """Store WHEEL in the server's data folder and offer it (signed with the school's key) in the policy."""
    from collector.audit import audit
    from collector.devices import agent_updates
    from collector.intake.broker_tls import data_dir

    db = open_db(db_url)
    try:
        o = agent_updates.offer(db, data_dir(db_url), school, Path(wheel), percent)
        audit(db, "agent_update_offer", school, {"version": o["version"], "sha256": o["sha256"],
                                                 "percent": o["percent"]})
    except agent_updates.UpdateError as e:
        raise click.ClickException(str(e)) from None
    finally:
        db.close()
    click.echo(f"offered agent {o['version']} to {o['percent']}% of {school}'s PCs (sha256 {o['sha256'][:16]}…, "
               f"{o['url']}); the running server publishes it with the policy")


@agent_update.command("show")
@click.option("--school", required=True)
@db_option
def show_cmd(school: str, db_url: Optional[str]) -> None:
    """The school's current offer as JSON (null: none)."""
    from collector.devices import agent_updates

    db = open_db(db_url)
    try:
        click.echo(json.dumps(agent_updates.current(db, school), ensure_ascii=False))
    finally:
        db.close()


@agent_update.command("withdraw")
@click.option("--school", required=True)
@db_option
def withdraw_cmd(school: str, db_url: Optional[str]) -> None:
    """Offer nothing any more (PCs that installed it keep it)."""
    from collector.audit import audit
    from collector.devices import agent_updates

    db = open_db(db_url)
    try:
        if agent_updates.withdraw(db, school):
            audit(db, "agent_update_withdraw", school, {})
            click.echo(f"{school}: offer withdrawn")
        else:
            click.echo(f"{school}: nothing was offered")
    finally:
        db.close()


def register(main: click.Group) -> None:
    main.add_command(agent_update)
