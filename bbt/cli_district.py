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

    from bbt.errors import BbtError
    from collector.service import Collector

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
    group = f", shared group {share_group}" if share_group else ""
    click.echo(f"bbt collect: {col.client_id} on {broker.url}{group}", err=True)
    done.wait()
    col.stop()


def register(main: click.Group) -> None:
    main.add_command(collect)
