"""Trust commands: `bbt deploy certs|keys`, `bbt backup`, `bbt restore`, `bbt purge`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from bbt.cli import db_option, open_db


def _group(main: click.Group, name: str, help_: str) -> click.Group:
    existing = main.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    grp = click.Group(name, help=help_)
    main.add_command(grp)
    return grp


@click.command("certs")
@click.option("--school", required=True)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="folder for the certificates")
@click.option("--devices", "devices_csv", default=None, type=click.Path(exists=True, dir_okay=False),
              help="devices CSV (column 'device'): one client certificate and agent.ini per device")
@click.option("--device", "device_ids", multiple=True, help="a device id (repeatable)")
@click.option("--host", "hosts", multiple=True,
              help="broker host name or IP for the server certificate (repeatable; default localhost, 127.0.0.1)")
@click.option("--port", default=8883, show_default=True, help="the TLS listener's port")
@click.option("--renew-devices", is_flag=True, help="re-issue device certificates that already exist")
def deploy_certs(school: str, out: str, devices_csv: Optional[str], device_ids: tuple, hosts: tuple,
                 port: int, renew_devices: bool) -> None:
    """School CA, broker certificate, per-device client certificates, signing key, Mosquitto TLS config."""
    from bbt.certs import CertPlan, make_certs, read_devices_csv

    devices = list(device_ids)
    if devices_csv:
        devices += [d for d in read_devices_csv(devices_csv) if d not in devices]
    plan = CertPlan(school=school, out=Path(out), devices=devices, port=port)
    if hosts:
        plan.hosts = list(hosts)
    res = make_certs(plan, force_devices=renew_devices)
    click.echo(f"{len(res.created)} files written, {len(res.kept)} kept, {len(devices)} devices in {out}")
    click.echo(f"Mosquitto: include {Path(out) / 'mosquitto-tls.conf'}; agents: copy {Path(out) / 'devices'}/<device>/")


@click.command("keys")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False))
def deploy_keys(out: str) -> None:
    """Only the command-signing key pair (command-signing.key / .pub), kept if it exists."""
    from bbt.signing import ensure_keypair

    created: list = []
    kept: list = []
    pub = ensure_keypair(Path(out) / "command-signing.key", created, kept)
    click.echo(f"{'created' if created else 'kept'} {Path(out) / 'command-signing.key'}")
    click.echo(pub)


def register(main: click.Group) -> None:
    deploy = _group(main, "deploy", "Deployment: certificates and keys.")
    deploy.add_command(deploy_certs)
    deploy.add_command(deploy_keys)
    _ = (db_option, open_db, Any)
