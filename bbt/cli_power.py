"""`bbt power`: group power actions from the command line (collector.operations.power / collector.operations.wake; the
dashboard's 电源管理 page does the same): shutdown / 雷雨关机 / wake by school, building or floor,
their results, the switch-on schedule."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import click

from bbt.cli import broker_options, db_option, open_db


@click.group()
def power() -> None:
    """Group power actions: shutdown, storm (雷雨关机), wake (wake-on-LAN), result, schedule."""


def _scope(f: Callable[..., Any]) -> Callable[..., Any]:
    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--school", required=True), click.option("--building", default=None),
        click.option("--floor", default=None, help="a floor of --building"),
        click.option("--wait", default=0.0, help="seconds to wait for the results"), db_option, broker_options]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _go(db: Any, action_id: str, created: list[dict[str, Any]], broker_kw: dict[str, Any], wait: float) -> None:
    from bbt.cli_collector import _broker
    from collector.devices import commands, school_keys
    from collector.devices.mqttout import PublishError, publish_all

    messages: list[tuple[str, bytes, bool]] = []
    for c in created:
        commands.publish(lambda t, p, r: messages.append((t, p, r)), c["school"], c["device"], c["command"],
                         school_keys.private_key(db, c["school"]))
    try:
        if messages:
            publish_all(_broker(broker_kw, db), messages)
    except PublishError as e:
        raise click.ClickException(f"{action_id}: stored but not sent ({e}); the running collector sends the "
                                   f"commands while they are valid") from None
    for c in created:
        commands.mark_sent(db, c["command"]["id"])
    click.echo(action_id)
    _show(db, action_id, wait)


def _show(db: Any, action_id: str, wait: float = 0.0) -> None:
    from collector.operations import power as p

    deadline = time.monotonic() + wait
    res = p.results(db, action_id)
    while res is not None and not res["done"] and time.monotonic() < deadline:
        time.sleep(0.5)
        res = p.results(db, action_id)
    if res is None:
        raise click.ClickException(f"no power action {action_id!r}")
    for t in res["targets"]:
        click.echo(f"{t['device']}\t{t['result']}\t{t['error'] or t['peer'] or ''}")
    click.echo(" ".join(f"{k}={v}" for k, v in res["tally"].items()) + f" total={res['total']}", err=True)


@power.command("shutdown")
@_scope
@click.option("--delay", default=60, show_default=True, help="seconds of warning before the PCs shut down")
@click.option("--text", default=None, help="notice shown during the delay")
def power_shutdown(school: str, building: Optional[str], floor: Optional[str], wait: float, db_url: Optional[str],
                   delay: int, text: Optional[str], **broker_kw: Any) -> None:
    """Shut down every online PC of a school, building or floor."""
    from collector.operations import power as p

    db = open_db(db_url)
    args: dict[str, Any] = {"delay_s": delay, **({"text": text} if text else {})}
    action_id, created = p.create_group(db, school, "shutdown", args, "cli", building, floor)
    _go(db, action_id, created, broker_kw, wait)


@power.command("storm")
@_scope
def power_storm(school: str, building: Optional[str], floor: Optional[str], wait: float, db_url: Optional[str],
                **broker_kw: Any) -> None:
    """雷雨关机: idle PCs off in a minute, PCs in use after a 10-minute countdown."""
    from collector.operations import power as p

    db = open_db(db_url)
    action_id, created = p.create_group(db, school, "shutdown", p.storm_args(), "cli", building, floor, "storm")
    _go(db, action_id, created, broker_kw, wait)


@power.command("wake")
@_scope
def power_wake(school: str, building: Optional[str], floor: Optional[str], wait: float, db_url: Optional[str],
               **broker_kw: Any) -> None:
    """Switch on the offline PCs (wake-on-LAN through an online PC of each subnet)."""
    from collector.operations import wake

    db = open_db(db_url)
    action_id, created = wake.create_wake(db, school, "cli", building, floor)
    _go(db, action_id, created, broker_kw, wait)


@power.command("result")
@click.argument("action_id")
@db_option
def power_result(action_id: str, db_url: Optional[str]) -> None:
    """Each PC's result of a power action, and the tally (on stderr)."""
    _show(open_db(db_url), action_id)


@power.command("schedule")
@click.option("--school", required=True)
@click.option("--on/--off", "enabled", default=True, help="switch-on before the first period on school days")
@click.option("--minutes-before", default=20, show_default=True)
@db_option
def power_schedule(school: str, enabled: bool, minutes_before: int, db_url: Optional[str]) -> None:
    """Set the school's switch-on schedule (the running collector applies it)."""
    from collector.operations import wake

    wake.set_schedule(open_db(db_url), school, enabled, minutes_before, "cli")
    click.echo(f"{school}: switch-on {'on' if enabled else 'off'}, {minutes_before} min before the first period")


def register(main: click.Group) -> None:
    main.add_command(power)
