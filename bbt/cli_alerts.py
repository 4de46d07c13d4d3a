"""Alert and fault-register commands: `bbt alerts ...` (routing config, silences, ack, test) and
`bbt faults ...` (register a fault, list, export the 故障登记簿). Python 3.8 syntax: imported on agents too."""
from __future__ import annotations

import json
import time
from typing import Any, Dict, Optional, Tuple

import click

from bbt.cli import db_option, open_db


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: routing config, silences, acknowledgement."""


@alerts_group.group("config")
def config_group() -> None:
    """A school's alert config (rules, channels, routes, quiet hours) as JSON."""


@config_group.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--school", required=True)
@db_option
def config_set(file: str, school: str, db_url: Optional[str]) -> None:
    """Check and store FILE as the school's alert config (docs/alerts.md)."""
    from alerts import config

    try:
        with open(file, encoding="utf-8") as f:
            doc = json.load(f)
    except ValueError as e:
        raise click.ClickException(f"{file}: not valid JSON ({e})") from None
    config.save(open_db(db_url), school, doc)
    click.echo(f"alert config for {school} stored ({len(doc.get('channels', {}))} channels, "
               f"{len(doc.get('routes', []))} routes)")


@config_group.command("show")
@click.option("--school", required=True)
@db_option
def config_show(school: str, db_url: Optional[str]) -> None:
    """Print the school's effective config, channel secrets masked."""
    from alerts import config

    db = open_db(db_url)
    eff = config.merged(config.load_raw(db, school))
    click.echo(json.dumps(config.redacted(eff), ensure_ascii=False, indent=2))


@alerts_group.command("list")
@click.option("--school", required=True)
@click.option("--state", default="open", show_default=True, help="open, firing, acknowledged, resolved or all")
@db_option
def alerts_list(school: str, state: str, db_url: Optional[str]) -> None:
    """Alerts, newest first: id, state, severity, place and subject."""
    from alerts import messages, store
    from collector.devices.registry import school_tz

    db = open_db(db_url)
    tz = school_tz(db, school)
    for a in store.list_alerts(db, school, state):
        click.echo(f"{a['id']}\t{a['state']}\t{a['severity']}\t{messages.line(a, tz)}"
                   + (f"\t{a['acked_by']}" if a["acked_by"] else ""))


@alerts_group.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", "by", required=True, help="who takes care of it")
@db_option
def alerts_ack(alert_id: int, by: str, db_url: Optional[str]) -> None:
    """Acknowledge an alert (stops escalation and repeats)."""
    from alerts import store

    row = store.acknowledge(open_db(db_url), alert_id, by, time.time())
    click.echo(f"alert {alert_id}: {row['state']} by {row['acked_by']}")


@alerts_group.command("test")
@click.option("--school", required=True)
@click.option("--channel", required=True, help="a channel name from the school's config")
@db_option
def alerts_test(school: str, channel: str, db_url: Optional[str]) -> None:
    """Send a test message through one channel."""
    from alerts import config
    from alerts.notify import AppriseSender

    cfg = config.load(open_db(db_url), school)
    ch = cfg["channels"].get(channel)
    if ch is None:
        raise click.ClickException(f"no channel {channel!r} in {school}'s alert config")
    if not AppriseSender().send(ch, f"bbt 测试消息：{school} 的告警通道 {channel} 可用。"):
        raise click.ClickException(f"channel {channel} did not accept the message (see the log)")
    click.echo(f"test message sent through {channel}")


def _matchers(pairs: Tuple[str, ...]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{p!r} is not KEY=VALUE", param_hint="--match")
        out[key.strip()] = value.strip()
    return out


@alerts_group.group("silence")
def silence_group() -> None:
    """Silences and maintenance windows: matching alerts are held, not sent."""


@silence_group.command("add")
@click.option("--school", required=True)
@click.option("--match", "match", multiple=True, help="KEY=VALUE on kind, code, severity, building, floor, class, "
                                                      "device (repeatable; none: everything)")
@click.option("--hours", type=float, default=2.0, show_default=True)
@click.option("--start", default=None, help="RFC 3339 start (default now)")
@click.option("--maintenance", is_flag=True, help="a maintenance window rather than a silence")
@click.option("--comment", default=None)
@click.option("--by", "by", default=None)
@db_option
def silence_add(school: str, match: Tuple[str, ...], hours: float, start: Optional[str], maintenance: bool,
                comment: Optional[str], by: Optional[str], db_url: Optional[str]) -> None:
    """Hold matching alerts for a while."""
    import protocol
    from alerts import store

    t0 = protocol.parse_time(start, "--start").timestamp() if start else time.time()
    sid = store.add_silence(open_db(db_url), school, _matchers(match), t0, t0 + hours * 3600, by, comment,
                            "maintenance" if maintenance else "silence", time.time())
    click.echo(f"silence {sid} until {time.strftime('%Y-%m-%d %H:%M', time.localtime(t0 + hours * 3600))}")


@silence_group.command("list")
@click.option("--school", required=True)
@db_option
def silence_list(school: str, db_url: Optional[str]) -> None:
    """Active and future silences."""
    from alerts import store

    for s in store.silences(open_db(db_url), school, time.time()):
        click.echo(f"{s['id']}\t{s['kind']}\t{json.dumps(s['matchers'], ensure_ascii=False)}\t"
                   f"{time.strftime('%m-%d %H:%M', time.localtime(s['starts']))} - "
                   f"{time.strftime('%m-%d %H:%M', time.localtime(s['ends']))}\t{s['comment'] or ''}")


@silence_group.command("expire")
@click.argument("silence_id", type=int)
@db_option
def silence_expire(silence_id: int, db_url: Optional[str]) -> None:
    """End a silence now."""
    from alerts import store

    if not store.expire_silence(open_db(db_url), silence_id, time.time()):
        raise click.ClickException(f"no active silence {silence_id}")
    click.echo(f"silence {silence_id} ended")


@click.group("faults")
def faults_group() -> None:
    """The fault register (故障登记簿)."""


@faults_group.command("add")
@click.option("--school", required=True)
@click.option("--device", required=True)
@click.option("--code", required=True, help="registerable (collector.codes): power_cut, projector, network")
@click.option("--severity", default="warning", show_default=True)
@click.option("--reporter", required=True, help="who reports it")
@click.option("--opened", default=None, help="RFC 3339 start (default now)")
@click.option("--cleared", default=None, help="RFC 3339 end, for a fault entered afterwards")
@click.option("--summary", default=None)
@db_option
def faults_add(school: str, device: str, code: str, severity: str, reporter: str, opened: Optional[str],
               cleared: Optional[str], summary: Optional[str], db_url: Optional[str]) -> None:
    """Register a fault (a 报修, or e.g. a power cut entered afterwards so its lessons are excused)."""
    import protocol
    from alerts import faultlog

    o = protocol.parse_time(opened, "--opened").timestamp() if opened else None
    c = protocol.parse_time(cleared, "--cleared").timestamp() if cleared else None
    tid = faultlog.register_fault(open_db(db_url), school, device, code, severity, reporter, o, c, summary)
    click.echo(f"fault ticket {tid} registered")


@faults_group.command("list")
@click.option("--school", required=True)
@click.option("--review", type=click.Choice(["pending", "confirmed", "rejected"]), default=None)
@click.option("--all", "everything", is_flag=True, help="closed entries too")
@db_option
def faults_list(school: str, review: Optional[str], everything: bool, db_url: Optional[str]) -> None:
    """The register's entries (open ones by default) with their review (待核实 / 影响上课 / 误报)."""
    from alerts import faultlog
    from collector.devices.registry import school_tz

    db = open_db(db_url)
    faultlog.sync_tickets(db, school, time.time())
    tz = school_tz(db, school)
    for t in faultlog.list_tickets(db, school, open_only=not everything, review=review):
        v = faultlog.ticket_view(t, tz)
        click.echo(f"{v['id']}\t{v['device']}\t{v['code']}\t{v['opened']}\t{v['cleared'] or '-'}\t{v['review']}")


@faults_group.command("review")
@click.argument("ticket_id", type=int)
@click.option("--review", "decision", type=click.Choice(["confirmed", "rejected"]), required=True,
              help="confirmed: it stopped teaching (影响上课); rejected: a false report (误报)")
@click.option("--by", "by", required=True, help="the maintainer or admin who reviewed it (for the audit log)")
@click.option("--from", "from_", default=None, help="RFC 3339 start of the confirmed interval (default: opening)")
@click.option("--to", default=None, help="RFC 3339 end of the confirmed interval (default: clearing)")
@db_option
def faults_review(ticket_id: int, decision: str, by: str, from_: Optional[str], to: Optional[str],
                  db_url: Optional[str]) -> None:
    """Review a register entry; the lessons it covers are recomputed (published weeks get a correction)."""
    import protocol
    from alerts import faultlog

    f = protocol.parse_time(from_, "--from").timestamp() if from_ else None
    t = protocol.parse_time(to, "--to").timestamp() if to else None
    row = faultlog.review_ticket(open_db(db_url), ticket_id, decision, by, f, t, via="cli")
    click.echo(f"fault ticket {ticket_id}: {row['review']}")


@faults_group.command("export")
@click.option("--school", required=True)
@click.option("--term", default=None, help="a day (YYYY-MM-DD) of the term to export (default: everything)")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False))
@db_option
def faults_export(school: str, term: Optional[str], out: str, db_url: Optional[str]) -> None:
    """Write the 故障登记簿 as XLSX (tickets and a statistics sheet)."""
    from datetime import date, datetime

    from alerts import faultlog
    from collector.devices.registry import school_tz

    db = open_db(db_url)
    tz = school_tz(db, school)
    since = until = None
    if term:
        try:
            a, b = faultlog.term_bounds(date.fromisoformat(term))
        except ValueError:
            raise click.BadParameter(f"{term!r} is not a date like 2026-11-23", param_hint="--term") from None
        since = datetime(a.year, a.month, a.day, tzinfo=tz).timestamp()
        until = datetime(b.year, b.month, b.day, tzinfo=tz).timestamp()
    rows = faultlog.list_tickets(db, school, since, until)
    faultlog.export_xlsx(rows, tz, out)
    click.echo(f"{len(rows)} fault tickets written to {out}")


def register(main: click.Group) -> None:
    main.add_command(alerts_group)
    main.add_command(faults_group)
