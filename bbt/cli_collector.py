"""CLI for the collector area (`bbt collect` is in cli_district): `bbt policy`, `bbt cmd`, `bbt deploy mosquitto`."""
from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any, Callable, Optional

import click

from bbt.cli import broker_from, broker_options, db_option, open_db

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


def _broker(broker_kw: dict[str, Any], db: Any = None) -> Any:
    """The broker to publish to; without --mqtt-username, as the collector's account of the embedded
    broker when the store has one (`bbt server` made it)."""
    from collector.intake import credentials

    kw = dict(broker_kw)
    kw["broker"] = kw.get("broker") or os.environ.get("BBT_BROKER") or DEFAULT_BROKER
    cfg = broker_from(**kw)
    if cfg.username is None and db is not None:
        password = credentials.stored_collector_password(db)
        if password is not None:
            cfg.username, cfg.password = credentials.COLLECTOR_USER, password
    return cfg


def _when(t: Optional[float]) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).astimezone().isoformat(timespec="seconds")


def register(main: click.Group) -> None:
    main.add_command(policy)
    main.add_command(cmd)
    existing = main.commands.get("deploy")  # another area may have made the group already (deploy certs)
    if isinstance(existing, click.Group):
        existing.add_command(deploy_mosquitto)
    else:
        main.add_command(deploy)


# -- policy ------------------------------------------------------------------------------------

@click.group()
def policy() -> None:
    """A school's policy (software rules, schedules, thresholds)."""


@policy.command("show")
@click.option("--school", required=True)
@db_option
def policy_show(school: str, db_url: Optional[str]) -> None:
    """Print the school's stored policy (the defaults if none was set)."""
    from collector.devices import policy as pol

    p = pol.get_policy(open_db(db_url), school)
    click.echo(f"# {school}: version {p['version']}" + ("" if p["version"] else " (defaults, never set)"), err=True)
    click.echo(json.dumps(p["policy"], ensure_ascii=False, indent=2, sort_keys=True))


@policy.command("set")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--school", required=True)
@click.option("--no-publish", is_flag=True, help="only store it (the running collector publishes it)")
@db_option
@broker_options
def policy_set(file: str, school: str, no_publish: bool, db_url: Optional[str], **broker_kw: Any) -> None:
    """Validate, store and publish (retained) a school's policy from FILE.json."""
    from collector.devices import policy as pol
    from collector.devices import school_keys
    from collector.devices.mqttout import PublishError, publish_all

    db = open_db(db_url)
    p = pol.set_policy(db, school, pol.load_file(file), source=os.path.basename(file))
    click.echo(f"policy of {school} stored (version {p['version']})")
    if no_publish:
        return
    cfg = _broker(broker_kw, db)
    try:
        pol.publish(lambda topic, payload, retain: publish_all(cfg, [(topic, payload, retain)]), school, p["policy"],
                    school_keys.private_key(db, school))
    except PublishError as e:
        click.echo(f"warning: not published yet ({e}); the collector publishes it when it is connected", err=True)
        return
    pol.mark_published(db, school, p["version"])
    click.echo(f"published retained on bbt/v1/{school}/policy via {cfg.url}")


# -- commands ----------------------------------------------------------------------------------

@click.group()
def cmd() -> None:
    """Commands to classroom PCs: shutdown, message, refresh-inventory, cancel-shutdown, list."""


def _target_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.argument("device", required=False),
        click.option("--class", "klass", default=None, help="every device of this class"),
        click.option("--school", default=None, help="every device of this school (or: where DEVICE/class is)"),
        click.option("--expires-in", default=3600, show_default=True, help="seconds the command stays valid"),
        db_option,
        broker_options,
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _send(kind: str, args: dict[str, Any], device: Optional[str], klass: Optional[str], school: Optional[str],
          expires_in: int, db_url: Optional[str], broker_kw: dict[str, Any]) -> None:
    from collector.devices import commands, school_keys
    from collector.devices.mqttout import PublishError, publish_all

    db = open_db(db_url)
    targets = commands.resolve_targets(db, device, klass, school)
    created = commands.create(db, kind, args, targets, expires_in)
    cfg = _broker(broker_kw, db)
    messages: list[tuple[str, bytes, bool]] = []
    for c in created:  # collect what commands.publish puts on the wire, then send it over one connection
        commands.publish(lambda t, p, r: messages.append((t, p, r)), c["school"], c["device"], c["command"],
                         school_keys.private_key(db, c["school"]))
    try:
        publish_all(cfg, messages)
    except PublishError as e:
        raise click.ClickException(f"{len(created)} command(s) stored but not sent ({e}); the running collector "
                                   f"sends them while they are valid") from None
    for c in created:
        commands.mark_sent(db, c["command"]["id"])
        click.echo(f"{c['command']['id']}\t{c['school']}/{c['device']}\t{kind}\tsent")
    click.echo(f"{len(created)} {kind} command(s) sent, valid until {created[0]['command']['expires']}", err=True)


@cmd.command("shutdown")
@_target_options
@click.option("--delay", default=60, show_default=True, help="seconds of warning before the PC shuts down")
@click.option("--text", default=None, help="notice shown during the delay")
def cmd_shutdown(device: Optional[str], klass: Optional[str], school: Optional[str], expires_in: int,
                 db_url: Optional[str], delay: int, text: Optional[str], **broker_kw: Any) -> None:
    """Shut down a device, a class's device or every device of a school."""
    args: dict[str, Any] = {"delay_s": delay}
    if text:
        args["text"] = text
    _send("shutdown", args, device, klass, school, expires_in, db_url, broker_kw)


@cmd.command("message")
@_target_options
@click.option("--text", required=True, help="the message shown on screen")
@click.option("--duration", default=None, type=int, help="seconds it stays on screen")
def cmd_message(device: Optional[str], klass: Optional[str], school: Optional[str], expires_in: int,
                db_url: Optional[str], text: str, duration: Optional[int], **broker_kw: Any) -> None:
    """Show a message on the screens of a device, a class or a school."""
    args: dict[str, Any] = {"text": text}
    if duration is not None:
        args["duration_s"] = duration
    _send("message", args, device, klass, school, expires_in, db_url, broker_kw)


@cmd.command("refresh-inventory")
@_target_options
def cmd_refresh_inventory(device: Optional[str], klass: Optional[str], school: Optional[str], expires_in: int,
                          db_url: Optional[str], **broker_kw: Any) -> None:
    """Ask for a fresh inventory now."""
    _send("refresh_inventory", {}, device, klass, school, expires_in, db_url, broker_kw)


@cmd.command("cancel-shutdown")
@_target_options
def cmd_cancel_shutdown(device: Optional[str], klass: Optional[str], school: Optional[str], expires_in: int,
                        db_url: Optional[str], **broker_kw: Any) -> None:
    """Cancel a pending delayed shutdown."""
    _send("cancel_shutdown", {}, device, klass, school, expires_in, db_url, broker_kw)


@cmd.command("list")
@click.option("--school", default=None)
@click.option("--device", default=None)
@click.option("--state", default=None, type=click.Choice(["pending", "sent", "acked", "failed", "expired"]))
@click.option("--limit", default=50, show_default=True)
@db_option
def cmd_list(school: Optional[str], device: Optional[str], state: Optional[str], limit: int,
             db_url: Optional[str]) -> None:
    """Commands and their state (sent, acked, failed, expired)."""
    from collector.devices import commands

    for r in commands.list_commands(open_db(db_url), school, state, device, limit):
        click.echo(f"{r['id']}\t{r['school']}/{r['device']}\t{r['kind']}\t{r['state']}\tissued {_when(r['issued'])}"
                   f"\texpires {_when(r['expires'])}" + (f"\t{r['error']}" if r["error"] else ""))


# -- deploy ------------------------------------------------------------------------------------

@click.group()
def deploy() -> None:
    """Files for deploying bbt's parts."""


@deploy.command("mosquitto")
@click.option("--devices", "devices_csv", required=True, type=click.Path(dir_okay=False),
              help="CSV/XLSX with a device column (the devices import file)")
@click.option("--school", required=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@click.option("--port", default=1883, show_default=True)
@click.option("--data-dir", default="/var/lib/mosquitto/", show_default=True, help="Mosquitto's persistence folder")
def deploy_mosquitto(devices_csv: str, school: str, out_dir: str, port: int, data_dir: str) -> None:
    """Write mosquitto.conf, passwd, acl and device-passwords.csv (0600) for a school's devices."""
    from collector.operations.deploy import write_mosquitto

    r = write_mosquitto(devices_csv, school, out_dir, port=port, data_dir=data_dir)
    click.echo(f"wrote {r.out}/mosquitto.conf, passwd, acl for {r.devices} devices + the collector account; "
               f"{r.new_passwords} new password(s) in {r.out}/device-passwords.csv (keep it secret)")
