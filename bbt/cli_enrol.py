"""`bbt enrol-token` and `bbt device revoke|reset|provision`: how PCs join and leave (docs/security.md)."""
from __future__ import annotations

import getpass
import time
from typing import Any, Optional

import click

from bbt.cli import db_option, open_db


def register(main: click.Group) -> None:
    main.add_command(enrol_token)
    main.add_command(device)
    main.add_command(school_key)


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name (containers)
        return "cli"


@click.command("enrol-token")
@click.option("--school", required=True)
@click.option("--rotate", is_flag=True, help="make a new secret (the old one stops working at once)")
@click.option("--days", default=30.0, show_default=True, help="how long a new secret is valid")
@click.option("--server", default="http://SERVER:8080", show_default=True,
              help="the dashboard's address as the PCs reach it (for the agent.ini printed)")
@click.option("--mqtt-port", default=1883, show_default=True)
@db_option
def enrol_token(school: str, rotate: bool, days: float, server: str, mqtt_port: int, db_url: Optional[str]) -> None:
    """Show the school's enrolment secret (made when missing or expired, or with --rotate), alone on the
    last line, after the agent.ini that enrols every PC of the school."""
    from urllib.parse import urlsplit

    from collector.intake import enrolment

    db = open_db(db_url)
    row = enrolment.current(db, school)
    if rotate or row is None or row["expires"] <= time.time():
        row = enrolment.rotate(db, school, _who(), days)
        click.echo(f"new enrolment secret for {school}", err=True)
    until = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["expires"]))
    broker = f"mqtt://{urlsplit(server).hostname or 'SERVER'}:{mqtt_port}"
    click.echo(f"# valid until {until}; agent.ini for every PC of {school}:", err=True)
    click.echo(enrolment.agent_ini(school, row["secret"], broker, server), err=True)
    click.echo(row["secret"])


@click.command("school-key")
@click.option("--school", required=True)
@db_option
def school_key(school: str, db_url: Optional[str]) -> None:
    """Print the public key the server signs this school's policies and commands with (made when missing):
    the `command_key` of agents that do not enrol (a Mosquitto set-up with `bbt deploy mosquitto`)."""
    from collector.devices import school_keys

    click.echo(f"command_key = {school_keys.public_key(open_db(db_url), school)}")


@click.group()
def device() -> None:
    """A PC's credentials: revoke (cut it off), reset (let it enrol again), provision (scripts)."""


def _target(f: Any) -> Any:
    for opt in reversed([click.argument("name"), click.option("--school", required=True), db_option]):
        f = opt(f)
    return f


@device.command("revoke")
@_target
def device_revoke(name: str, school: str, db_url: Optional[str]) -> None:
    """Cut a PC off: its credentials stop working and the embedded broker drops its connection."""
    from collector.intake import credentials

    credentials.revoke(open_db(db_url), school, name, _who())
    click.echo(f"{school}/{name} revoked (to let it enrol again: bbt device reset {name} --school {school})")


@device.command("reset")
@_target
def device_reset(name: str, school: str, db_url: Optional[str]) -> None:
    """Forget a PC's credentials so that it can enrol again (a reinstalled PC)."""
    from collector.intake import credentials

    credentials.reset(open_db(db_url), school, name, _who())
    click.echo(f"{school}/{name} reset: it may enrol again with the school's secret")


@device.command("provision")
@_target
def device_provision(name: str, school: str, db_url: Optional[str]) -> None:
    """Make a PC's MQTT account without enrolment (scripts, simulators); prints its password alone on the
    last line. The PC's agent.ini then needs username, password and command_key (printed too)."""
    from collector.devices import school_keys
    from collector.intake import credentials

    db = open_db(db_url)
    password = credentials.provision(db, school, name, _who())
    click.echo(f"username = {name}\ncommand_key = {school_keys.public_key(db, school)}", err=True)
    click.echo(password)
