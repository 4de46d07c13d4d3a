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
    from collector.intake.certs import CertPlan, make_certs, read_devices_csv

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
    """The command-signing key pair (command-signing.key / .pub) and the backup key; existing ones are kept."""
    from common.signing import ensure_keypair

    created: list = []
    kept: list = []
    from collector.operations.backup import make_key

    pub = ensure_keypair(Path(out) / "command-signing.key", created, kept)
    click.echo(f"{'created' if created else 'kept'} {Path(out) / 'command-signing.key'}")
    made = make_key(Path(out) / "backup.key")
    click.echo(f"{'created' if made else 'kept'} {Path(out) / 'backup.key'} (keep a copy away from the backups)")
    click.echo(pub)


def _key(key_file: Optional[str]) -> Optional[bytes]:
    from collector.operations.backup import load_key

    return load_key(key_file) if key_file else None


key_option = click.option("--key", "key_file", envvar="BBT_BACKUP_KEY", default=None,
                          help="backup key file (env BBT_BACKUP_KEY): encrypt / decrypt the backup")


@click.command("backup")
@db_option
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="backup folder")
@click.option("--keep", default=14, show_default=True, help="keep only the newest N backups in the folder")
@key_option
def backup_cmd(db_url: Optional[str], out: str, keep: int, key_file: Optional[str]) -> None:
    """Online backup of the store (SQLite backup API or pg_dump), while the server keeps running."""
    from collector.audit import audit
    from collector.operations.backup import backup

    db = open_db(db_url)
    path = backup(db, out, keep, _key(key_file))
    with db.transaction():
        audit(db, "backup", path.name, {"bytes": path.stat().st_size, "encrypted": bool(key_file)})
    click.echo(str(path))


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
@key_option
@click.option("--force", is_flag=True, help="replace a store that already holds data")
def restore_cmd(file: str, db_url: Optional[str], key_file: Optional[str], force: bool) -> None:
    """Replace the store with a backup (stop `bbt server` first)."""
    from collector.audit import audit
    from collector.db import connect
    from collector.operations.backup import BackupError, restore

    target = connect(db_url)
    try:
        has = target.query("SELECT COUNT(*) AS n FROM schema_migrations")[0]["n"] if _has_schema(target) else 0
    finally:
        target.close()
    if has and not force:
        raise BackupError("the store already holds data; add --force to replace it with the backup")
    db = restore(file, db_url, _key(key_file))
    with db.transaction():
        audit(db, "restore", Path(file).name, {})
    n = db.query("SELECT COUNT(*) AS n FROM events")[0]["n"]
    click.echo(f"restored {Path(file).name}: {n} events")


def _has_schema(db: Any) -> bool:
    from collector.operations.retention import table_columns

    return "schema_migrations" in table_columns(db)


@click.command("purge")
@db_option
@click.option("--teacher", default=None, help="destroy this departed teacher's personal data (timetable name)")
@click.option("--school", default=None, help="only in this school")
@click.option("--heartbeats", is_flag=True, help="delete raw heartbeats older than --days")
@click.option("--days", default=None, type=float, help="heartbeat retention (default BBT_HEARTBEAT_DAYS or 400)")
def purge_cmd(db_url: Optional[str], teacher: Optional[str], school: Optional[str], heartbeats: bool,
              days: Optional[float]) -> None:
    """Retention and personal-data purges; every purge is written to the audit log."""
    import os

    from collector.operations.retention import HEARTBEAT_DAYS, purge_heartbeats, purge_teacher

    if not teacher and not heartbeats:
        raise click.UsageError("give --teacher NAME or --heartbeats")
    db = open_db(db_url)
    if teacher:
        res = purge_teacher(db, teacher, school)
        rows = ", ".join(f"{k} {v}" for k, v in res["rows"].items() if v)
        click.echo(f"已销毁该教师的个人信息，现记为 {res['pseudonym']} / personal data destroyed ({rows})")
    if heartbeats:
        n = purge_heartbeats(db, days if days is not None else float(os.environ.get("BBT_HEARTBEAT_DAYS",
                                                                                    HEARTBEAT_DAYS)))
        click.echo(f"deleted {n} heartbeats")


@click.command("audit")
@db_option
@click.option("--limit", default=50, show_default=True)
def audit_cmd(db_url: Optional[str], limit: int) -> None:
    """The audit log: backups, restores, purges (newest first)."""
    import time

    db = open_db(db_url)
    for r in db.query("SELECT t, actor, action, target, detail FROM audit ORDER BY t DESC LIMIT ?", (limit,)):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["t"]))
        click.echo(f"{when}  {r['actor']}  {r['action']}  {r['target'] or ''}  {r['detail']}")


def register(main: click.Group) -> None:
    deploy = _group(main, "deploy", "Deployment: certificates and keys.")
    deploy.add_command(deploy_certs)
    deploy.add_command(deploy_keys)
    for cmd in (backup_cmd, restore_cmd, purge_cmd, audit_cmd):
        main.add_command(cmd)
