"""District commands: `bbt collect` (a collector-only process, one of several on a shared
subscription) and `bbt simulate` (many schools' classroom PCs through a real broker)."""
from __future__ import annotations

import socket
from typing import Any, Optional

import click

from bbt.cli import broker_from, broker_options, db_option


def default_client_id() -> str:
    """Stable across restarts (the broker keeps a killed collector's unacknowledged messages in
    its persistent session and hands them back when the same client id reconnects)."""
    return f"bbt-collector-{socket.gethostname()}"[:64]


@click.command("collect")
@db_option
@broker_options
@click.option("--share-group", default=None, envvar="BBT_SHARE_GROUP",
              help="MQTT shared-subscription group ($share/GROUP/...): collectors in one group split the load")
@click.option("--client-id", default=None, envvar="BBT_CLIENT_ID",
              help="MQTT client id, unique per collector and the same after a restart (default bbt-collector-HOST)")
@click.option("--batch-size", default=500, show_default=True, help="messages per transaction at most")
@click.option("--batch-ms", default=50, show_default=True, help="wait at most this long to fill a batch")
def collect(db_url: Optional[str], share_group: Optional[str], client_id: Optional[str], batch_size: int,
            batch_ms: int, **broker_kw: Any) -> None:
    """Collector only (no dashboard): MQTT in, store out. Run several with one --share-group."""
    import signal
    import threading

    from collector.intake.service import Collector
    from common.errors import BbtError

    broker = broker_from(**broker_kw)
    if broker is None:
        raise BbtError("bbt collect needs --broker mqtt://HOST:PORT (the collector has no embedded broker)")
    if share_group is not None and not share_group.replace("-", "").replace("_", "").isalnum():
        raise BbtError(f"--share-group {share_group!r}: use letters, digits, '-' and '_' only")
    col = Collector(db_url, broker, client_id=client_id or default_client_id(), batch_size=batch_size,
                    batch_ms=batch_ms, share_group=share_group)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    col.start()
    from collector.operations.maintenance import Maintenance  # commands, policies, daily heartbeat retention

    stop_maintenance = Maintenance(col, purge_every=86400.0).start()
    group = f", shared group {share_group}" if share_group else ""
    click.echo(f"bbt collect: {col.client_id} on {broker.url}{group}", err=True)
    done.wait()
    stop_maintenance()
    col.stop()


@click.command("simulate")
@click.option("--schools", default=2, show_default=True, help="number of schools")
@click.option("--devices", default=36, show_default=True, help="classroom PCs per school")
@click.option("--speed", default=60.0, show_default=True,
              help="simulated seconds per real second (0: as fast as the broker takes it)")
@broker_options
@click.option("--day", default=None, help="the school day to simulate, YYYY-MM-DD (default: the last weekday)")
@click.option("--heartbeat-s", default=60, show_default=True, help="seconds between a device's heartbeats")
@click.option("--connections", default=0, help="pooled MQTT connections (default: one per 500 devices)")
@click.option("--seed", default=1, show_default=True, help="random seed (the same seed, the same district)")
@click.option("--school-data", default=None, type=click.Path(file_okay=False),
              help="also write each school's devices, bell and timetable CSV files here (for bbt import)")
def simulate(schools: int, devices: int, speed: float, day: Optional[str], heartbeat_s: int, connections: int,
             seed: int, school_data: Optional[str], **broker_kw: Any) -> None:
    """Simulate a district's classroom PCs through a school day, over a real broker."""
    import signal
    from datetime import date as date_
    from pathlib import Path

    from bbt.fleet import Fleet, FleetResult, FleetSpec, write_school_data
    from common.errors import BbtError

    if schools < 1 or devices < 1 or speed < 0 or heartbeat_s < 1:
        raise BbtError("--schools, --devices and --heartbeat-s must be at least 1, --speed at least 0")
    try:
        the_day = date_.fromisoformat(day) if day else None
    except ValueError:
        raise BbtError(f"--day {day!r} is not YYYY-MM-DD") from None
    broker = broker_from(**{**broker_kw, "broker": broker_kw.get("broker") or "mqtt://127.0.0.1:1883"})
    spec = FleetSpec(schools=schools, devices=devices, day=the_day, heartbeat_s=heartbeat_s, seed=seed,
                     connections=connections)
    fleet = Fleet(spec, broker)
    if school_data:
        n = len(write_school_data(spec, fleet.day, Path(school_data)))
        click.echo(f"wrote {n} CSV files under {school_data}", err=True)
    signal.signal(signal.SIGTERM, lambda *_: fleet.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: fleet.stop_event.set())
    last = [0.0]

    def progress(r: FleetResult) -> None:
        import time

        if time.monotonic() - last[0] >= 2:
            last[0] = time.monotonic()
            click.echo(f"  {fleet.clock_text(r.sim_end)}  {r.events} events, {r.messages} messages", err=True)

    click.echo(f"simulating {schools} schools x {devices} PCs on {fleet.day} via {broker.url} "
               f"({'flat out' if not speed else f'{speed:g}x'})", err=True)
    res = fleet.run_day(speed, progress)
    click.echo(f"published {res.events} events in {res.messages} messages and {res.statuses} statuses "
               f"for {res.devices} devices in {res.real_s:.1f} s")


def register(main: click.Group) -> None:
    main.add_command(collect)
    main.add_command(simulate)
