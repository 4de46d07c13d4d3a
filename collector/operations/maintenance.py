"""The collector's housekeeping thread: expire commands, (re)publish policies and pending commands
through the collector's own MQTT connection. In `bbt collect` (no server scheduler) it also runs the
raw-heartbeat retention purge once a day (collector.operations.retention, BBT_HEARTBEAT_DAYS)."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from collector.devices import commands, policy
from collector.devices.mqttout import client_sender
from collector.intake.service import Collector
from collector.operations import retention, wake

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, collector: Collector, interval: float = 30.0, purge_every: float | None = None) -> None:
        self.collector = collector
        self.db = collector.db
        self.interval = interval
        self.purge_every = purge_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen_connection = 0
        self._last_purge = 0.0

    def run_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        commands.expire(self.db, now)
        col = self.collector
        if col.connected.is_set() and col.client is not None:
            send = client_sender(col.client)
            new_connection = col.connections != self._seen_connection
            # a new connection (maybe to a broker that lost its state): publish every policy again
            policy.publish_stored(self.db, send, only_pending=not new_connection)
            self._seen_connection = col.connections
            commands.publish_pending(self.db, send, now)
            for action_id in wake.run_schedules(self.db, send, now):  # switch-on before the first period
                log.info("scheduled switch-on (wake-on-LAN): %s", action_id)
        if self.purge_every is not None and now - self._last_purge >= self.purge_every:
            self._last_purge = now
            days = float(os.environ.get("BBT_HEARTBEAT_DAYS", retention.HEARTBEAT_DAYS))
            deleted = retention.purge_heartbeats(self.db, days, now, who="collector")
            if deleted:
                log.info("retention: %d old heartbeats deleted", deleted)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                except Exception:
                    log.exception("collector maintenance failed; trying again later")
                self._stop.wait(self.interval)
        finally:
            self.db.close()  # this thread's connection

    def start(self) -> Callable[[], None]:
        self._thread = threading.Thread(target=self._run, name="bbt-maintenance", daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)


def start_for_server(server: Any) -> Callable[[], None]:
    """Server hook (bbt.server); the server's daily job does the retention purge."""
    return Maintenance(server.collector).start()
