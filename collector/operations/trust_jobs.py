"""The server's trust jobs: a daily online backup (newest N kept) and heartbeat retention purge, and
every 15 minutes the flagging of lessons whose data is missing (collector.rates.certainty).

Settings (environment): BBT_BACKUP (0 turns the jobs off), BBT_BACKUP_DIR (default: ``backups``
next to the SQLite file, else the data directory's), BBT_BACKUP_KEEP (14), BBT_BACKUP_AT (HH:MM,
server local time, default 02:30), BBT_BACKUP_KEY (a key file: backups are encrypted),
BBT_HEARTBEAT_DAYS (raw heartbeats kept, default 400).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Callable

from collector.db import connect, default_db_url
from collector.operations.retention import HEARTBEAT_DAYS

log = logging.getLogger(__name__)
BACKUP_LEASE_S = 3600.0  # longer than any backup: a second server at the same minute skips


def backup_dir(db_url: str) -> Path:
    configured = os.environ.get("BBT_BACKUP_DIR")
    if configured:
        return Path(configured)
    if "://" not in db_url or db_url.startswith("sqlite:///"):
        return Path(db_url.replace("sqlite:///", "")).expanduser().resolve().parent / "backups"
    return Path(default_db_url()).expanduser().resolve().parent / "backups"


def run_daily(db_url: str, now: float | None = None) -> None:
    """One run of the daily jobs (also what the scheduler calls); logs, never raises.

    Several servers on one store (district) each schedule it; the ``backup`` lease lets one run it."""
    from collector.audit import audit
    from collector.lease import Lease
    from collector.operations.backup import backup, load_key
    from collector.operations.retention import purge_heartbeats

    db = connect(db_url)
    try:
        if not Lease(db, "backup", ttl=BACKUP_LEASE_S).held():
            log.info("daily backup: another server holds the backup lease; skipped here")
            return
        key_file = os.environ.get("BBT_BACKUP_KEY")
        path = backup(db, backup_dir(db_url), int(os.environ.get("BBT_BACKUP_KEEP", "14")),
                      load_key(key_file) if key_file else None, now=now)
        with db.transaction():
            audit(db, "backup", path.name, {"scheduled": True, "bytes": path.stat().st_size}, "scheduler")
        log.info("daily backup written: %s", path)
        n = purge_heartbeats(db, float(os.environ.get("BBT_HEARTBEAT_DAYS", HEARTBEAT_DAYS)), who="scheduler")
        log.info("retention: %d old heartbeats deleted", n)
    except Exception:
        log.exception("the daily backup/retention job failed")
    finally:
        db.close()


def flag_today(db_url: str, now: float | None = None) -> int:
    """Certainty of today's finished lessons in every school; lessons with data missing become
    ``data_missing`` info faults (collector.rates.certainty). Logs, never raises."""
    from datetime import datetime

    from collector.devices.registry import school_tz
    from collector.rates import certainty, usage

    db = connect(db_url)
    n = 0
    try:
        for r in db.query("SELECT school FROM schools ORDER BY school"):
            tz = school_tz(db, r["school"])
            today = datetime.fromtimestamp(time.time() if now is None else now, tz).date()
            rows = usage.day_lessons(db, r["school"], today, now)
            n += certainty.flag_missing(db, r["school"], rows, tz)
    except Exception:
        log.exception("flagging lessons with missing data failed")
    finally:
        db.close()
    return n


def start(server: Any) -> Callable[[], None] | None:
    from common import signing

    if signing.wire_key() is not None:  # a wrong BBT_SIGNING_KEY fails the start, not the first command
        log.info("commands and policies are signed (BBT_SIGNING_KEY)")
    if os.environ.get("BBT_BACKUP", "1") == "0":
        return None
    from apscheduler.schedulers.background import BackgroundScheduler

    hh, _, mm = os.environ.get("BBT_BACKUP_AT", "02:30").partition(":")
    db_url = server.opts.db_url or default_db_url()
    sched = BackgroundScheduler(daemon=True)
    sched.add_job(run_daily, "cron", hour=int(hh), minute=int(mm or 0), args=[db_url], id="bbt-backup",
                  max_instances=1, coalesce=True, misfire_grace_time=6 * 3600)
    sched.add_job(flag_today, "interval", minutes=15, args=[db_url], id="bbt-data-missing",
                  max_instances=1, coalesce=True)
    sched.start()
    server.trust_scheduler = sched
    return lambda: sched.shutdown(wait=False)
