"""Backup and restore of a school-year-sized SQLite store: time, size, and what encryption costs.

    .venv/bin/python bench/backup.py [--events 1000000]

Builds a store with N events (heartbeats of 60 PCs, as the collector writes them), then times:
an online backup (SQLite backup API + quick_check), the same encrypted (AES-256-GCM), a restore
of each into a fresh file, and a backup taken while a writer keeps committing (does it finish,
how much does the writer slow down). Writes bench/results/backup.json and backup.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector import migrations  # noqa: E402
from collector.db import connect  # noqa: E402
from collector.operations import backup as bk  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def build(path: str, n: int) -> None:
    db = connect(path)
    migrations.migrate(db)
    data = json.dumps({"in_use": True, "idle_s": 12, "cpu_pct": 7.5, "mem_pct": 41.0, "disk_pct": 63.0,
                       "uptime_s": 5400}, separators=(",", ":"))
    t0 = 1_790_000_000.0
    batch = 20000
    for start in range(0, n, batch):
        rows = [("s1", f"pc-{i % 60:02d}", f"e{i:09d}", i // 60, "heartbeat", "2026-09-01T08:00:00+08:00",
                 t0 + i, t0 + i, data) for i in range(start, min(n, start + batch))]
        with db.transaction():
            db.executemany("INSERT INTO events (school, device, id, seq, type, ts, t, received, data) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.close()


def timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def writer_rate(path: str, seconds: float, stop: threading.Event | None = None) -> float:
    db = connect(path)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds and not (stop and stop.is_set()):
        with db.transaction():
            db.execute("INSERT INTO events (school, device, id, seq, type, ts, t, received, data) "
                       "VALUES ('s1', 'w', ?, ?, 'heartbeat', 'x', 0, 0, '{}')", (f"w{time.time_ns()}", n))
        n += 1
    db.close()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    args = ap.parse_args()
    res: dict[str, Any] = {"events": args.events, "machine": f"{platform.machine()} {os.cpu_count()} cpu",
                           "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                       time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "bbt.db")
        res["build_s"], _ = timed(lambda: build(src, args.events))
        res["store_mb"] = (os.path.getsize(src) + (os.path.getsize(src + "-wal") if os.path.exists(src + "-wal")
                                                   else 0)) / 1e6
        db = connect(src)
        bk.make_key(Path(tmp) / "k")
        key = bk.load_key(os.path.join(tmp, "k"))
        res["backup_s"], plain = timed(lambda: bk.backup(db, os.path.join(tmp, "b"), keep=5))
        res["backup_mb"] = plain.stat().st_size / 1e6
        res["backup_enc_s"], enc = timed(lambda: bk.backup(db, os.path.join(tmp, "b"), keep=5, key=key,
                                                           now=time.time() + 1))
        res["backup_enc_mb"] = enc.stat().st_size / 1e6
        for name, f, k in (("restore_s", plain, None), ("restore_enc_s", enc, key)):
            res[name], r = timed(lambda f=f, k=k, name=name: bk.restore(f, os.path.join(tmp, f"r-{name}.db"), k))
            assert r.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == args.events
            r.close()
        res["writer_alone_per_s"] = writer_rate(src, 3.0)
        stop = threading.Event()
        rates: list[float] = []
        t = threading.Thread(target=lambda: rates.append(writer_rate(src, 60.0, stop)))
        t.start()
        time.sleep(0.5)
        res["backup_under_writes_s"], _ = timed(lambda: bk.backup(db, os.path.join(tmp, "b"), keep=5,
                                                                  now=time.time() + 2))
        stop.set()
        t.join()
        res["writer_during_backup_per_s"] = rates[0]
        db.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "backup.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [f"# Backup and restore ({res['when']}, {res['machine']}, Python {res['python']})", "",
          f"A SQLite store with {args.events:,} heartbeat events ({res['store_mb']:.0f} MB).", "",
          "| step | seconds | size MB |", "|---|---|---|",
          f"| online backup (backup API + quick_check) | {res['backup_s']:.2f} | {res['backup_mb']:.0f} |",
          f"| online backup, encrypted (AES-256-GCM) | {res['backup_enc_s']:.2f} | {res['backup_enc_mb']:.0f} |",
          f"| restore | {res['restore_s']:.2f} | |",
          f"| restore, encrypted | {res['restore_enc_s']:.2f} | |",
          f"| backup while a writer commits | {res['backup_under_writes_s']:.2f} | |", "",
          f"A writer committing one event per transaction (synchronous=FULL): "
          f"{res['writer_alone_per_s']:.0f}/s alone, {res['writer_during_backup_per_s']:.0f}/s while the backup "
          "ran (WAL: the backup's read transaction does not block it).", ""]
    (RESULTS / "backup.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
