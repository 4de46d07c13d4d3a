"""Where the ingest process's CPU goes, per event: cProfile in every thread of `bbt server`'s ingest part.

    .venv/bin/python bench/ingest_profile.py [--events 40000]

What the ingest child of `bbt server` runs (``Server(role="ingest")``: collector + maintenance), here
in this process with a cProfile per thread, against a fresh Mosquitto; four C publishers
(`mosquitto_pub -l -q 1`) send the stream. The breakdown: paho (the network thread: reading,
parsing, the on_message enqueue; and the acknowledgements sent from the writer), validation
(collector.devices.ingest.prepare: JSON, the wire contract) and the store (collector.intake.store.apply_batch:
SQL, commit and fsync). cProfile itself adds overhead: the absolute µs are higher than unprofiled
(bench/results/server_ingest.md reads the unprofiled CPU from /proc), the shares are what counts.
Writes bench/results/ingest_profile.json and .md.
"""
from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bbt.server import Attached, Server, ServerOptions  # noqa: E402
from bench.server_ingest import PUBLISHERS, RESULTS, publish, say, stored, until_all, write_streams  # noqa: E402
from common.mqttconf import BrokerConfig  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402

PARTS = {  # (file suffix, function) whose cumulative time is the part (on the writer thread)
    "validation (collector.devices.ingest.prepare)": ("collector/devices/ingest.py", "prepare"),
    "store (collector.intake.store.apply_batch)": ("collector/intake/store.py", "apply_batch"),
    "acknowledgements (paho, after commit)": ("collector/intake/fastmqtt.py", "ack_many"),
}


def profile_threads() -> dict[str, cProfile.Profile]:
    """A cProfile for every thread started from now on, keyed by thread name."""
    profiles: dict[str, cProfile.Profile] = {}

    def hook(frame: Any, event: str, arg: Any) -> None:
        p = cProfile.Profile(time.thread_time)  # CPU time of this thread, not waiting
        profiles[threading.current_thread().name] = p
        p.enable()  # replaces this hook in this thread

    threading.setprofile(hook)
    return profiles


def cumulative(st: pstats.Stats, suffix: str, func: str) -> float:
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    return sum(v[3] for (f, _line, name), v in raw.items() if f.endswith(suffix) and name == func)


def total(st: pstats.Stats) -> float:
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    return sum(v[2] for v in raw.values())


def top(st: pstats.Stats, n: int, events: int) -> list[dict[str, Any]]:
    raw: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:n]
    return [{"function": f"{Path(f).name}:{line} {name}" if f != "~" else name,
             "self_us_per_event": round(v[2] / events * 1e6, 2), "calls_per_event": round(v[1] / events, 2)}
            for (f, line, name), v in rows]


def direct(events: int) -> dict[str, float]:
    """Without a profiler: the ingest part's whole CPU over a run, and validation and store timed alone on
    the same messages (thread CPU time); paho is the rest."""
    from collector import migrations
    from collector.db import connect
    from collector.devices.commands import handle_ack
    from collector.devices.ingest import Incoming, prepare
    from collector.intake.store import apply_batch

    whole = run(events, profiled=False)["cpu_us_per_event"]
    with tempfile.TemporaryDirectory(prefix="bbt-profile-") as tmp:
        files = write_streams(Path(tmp), "s1", [f"pc-{i}" for i in range(PUBLISHERS)], events // PUBLISHERS)
        msgs = [Incoming(f"bbt/v1/s1/{f.stem}/events", line, time.time(), 1, 1, False)
                for f in files for line in f.read_bytes().splitlines()]
        t0 = time.thread_time()
        prepared = [prepare(m) for m in msgs]
        validation = time.thread_time() - t0
        db = connect(str(Path(tmp) / "bbt.db"))
        migrations.migrate(db)
        t0, w0 = time.thread_time(), time.perf_counter()
        for i in range(0, len(prepared), 500):
            apply_batch(db, prepared[i:i + 500], handle_ack)
        store, store_wall = time.thread_time() - t0, time.perf_counter() - w0
        db.close()
    n = len(msgs)
    v, st = validation / n * 1e6, store / n * 1e6
    return {"ingest process, whole (process CPU over a run)": round(whole, 1), "validation (prepare)": round(v, 1),
            "store (apply_batch, batches of 500)": round(st, 1),
            "store, wall time with fsync": round(store_wall / n * 1e6, 1),
            "paho and the rest (whole - validation - store)": round(whole - v - st, 1)}


def run(events: int, profiled: bool = True) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bbt-profile-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        devices = [f"pc-{i}" for i in range(PUBLISHERS)]
        files = write_streams(work, "s1", devices, events // PUBLISHERS)
        db = str(work / "bbt.db")
        profiles = profile_threads() if profiled else {}
        srv = Server(ServerOptions(db_url=db), role="ingest",
                     attached=Attached(broker=BrokerConfig(port=broker.port)))
        srv.start()
        cpu0 = time.process_time()
        try:
            t0 = time.time()
            pubs = publish(broker.port, "s1", devices, files)
            t_end, n = until_all(lambda: stored(db), events, t0, 30.0)
            for p in pubs:
                p.wait(60)
            cpu = time.process_time() - cpu0
        finally:
            threading.setprofile(None)  # type: ignore[arg-type]
            srv.stop()
            broker.stop()
    if not profiled:
        return {"events": n, "cpu_us_per_event": cpu / n * 1e6}
    per_thread = {name: pstats.Stats(p) for name, p in profiles.items()}
    threads = {name: round(total(st) / n * 1e6, 1) for name, st in per_thread.items() if total(st) / n > 1e-7}
    writer = per_thread.get("bbt-writer")
    parts = {label: round(cumulative(writer, *key) / n * 1e6, 1) for label, key in PARTS.items()} if writer else {}
    net = [name for name in per_thread if name.startswith("paho") or "Thread-" in name]
    parts["paho network thread (read, parse, on_message)"] = round(sum(total(per_thread[t]) for t in net) / n * 1e6, 1)
    everything = pstats.Stats(*profiles.values())
    return {"events": n, "seconds": round(t_end - t0, 2), "threads_us_per_event": threads, "parts_us_per_event": parts,
            "total_us_per_event": round(sum(total(st) for st in per_thread.values()) / n * 1e6, 1),
            "top_self_time": top(everything, 25, n)}


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Ingest process profile / 采集进程 CPU 剖析", "",
             f"`bench/ingest_profile.py`: {r['events']} heartbeats from {PUBLISHERS} C publishers, the ingest part "
             "of `bbt server` (collector + maintenance) with cProfile (thread CPU time) in every thread. µs of CPU per "
             "event "
             f"(profiled: higher than without cProfile; the shares are what counts). Total: "
             f"**{r['total_us_per_event']} µs/event**.", "",
             "| part | µs per event | share |", "|---|---|---|"]
    for label, us in r["parts_us_per_event"].items():
        lines.append(f"| {label} | {us} | {round(100 * us / r['total_us_per_event'])} % |")
    lines += ["", "Without a profiler (the whole from this process's CPU over a run; validation and store timed "
              "alone on the same messages):", "", "| part | µs per event |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["unprofiled_us_per_event"].items()]
    lines += ["", "By thread: " + ", ".join(f"{k} {v} µs" for k, v in r["threads_us_per_event"].items()), "",
              "| function (self time) | µs per event | calls per event |", "|---|---|---|"]
    lines += [f"| `{t['function']}` | {t['self_us_per_event']} | {t['calls_per_event']} |" for t in r["top_self_time"]]
    return "\n".join(lines + ["", "Reproduce: `.venv/bin/python bench/ingest_profile.py`", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=40000)
    args = ap.parse_args()
    say(f"profiling the ingest process on {args.events} events ...")
    r = run(args.events)
    say("the same without a profiler ...")
    r["unprofiled_us_per_event"] = direct(args.events)
    r["summary"] = {f"{k} (µs/event)": v for k, v in r["unprofiled_us_per_event"].items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_profile.json").write_text(json.dumps(r, indent=1) + "\n")
    (RESULTS / "ingest_profile.md").write_text(markdown(r), encoding="utf-8")
    print(markdown(r))


if __name__ == "__main__":
    main()
