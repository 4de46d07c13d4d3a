"""CPU per event of each stage of the collector's ingest path, on real bytes (a micro-benchmark).

    .venv/bin/python bench/ingest_cpu.py [--events 20000] [--repeat 3]

Stages, each timed with the CPU clock of the thread doing the work (best of ``--repeat``):
- receive: MQTT PUBLISH packets (QoS 1, the heartbeats of bench/ingest.py) arrive on a loopback TCP
  socket from a minimal broker stand-in; the collector's own client (``Collector.make_client``:
  collector/intake/fastmqtt.py and the collector's callbacks) reads them and queues them for the writer.
- validate: ``collector.devices.ingest.prepare`` of each queued message (the contract checks).
- store: ``collector.intake.store.apply_batch`` in batches of 500 on SQLite (WAL, synchronous=FULL) —
  CPU only; the fsync per batch is wall time, reported apart.
- ack: ``ack_many`` of each batch and paho writing the PUBACKs to the socket.
- end to end: the whole collector (``Collector.start``: network thread and writer thread) drains the same
  stream from a real Mosquitto, where publisher processes left it in the collector's persistent session;
  CPU of the whole process (every thread) per event, and events/s.
Writes bench/results/ingest_cpu.md and ingest_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import DEVICES, Publishers, payload  # noqa: E402
from collector.devices.ingest import Incoming, prepare  # noqa: E402
from collector.intake.service import Collector  # noqa: E402
from collector.intake.store import apply_batch  # noqa: E402
from common.mqttconf import BrokerConfig  # noqa: E402
from tests.brokers import Mosquitto, publish_packet  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BATCH = 500
STAGES = ("receive", "validate", "store", "ack")


def stream(n: int) -> bytes:
    return b"".join(publish_packet(f"bbt/v1/s1/pc-{i % DEVICES:04d}/events".encode(),
                                   payload(i % DEVICES, i // DEVICES), 1, i % 65535 + 1) for i in range(n))


class StandIn:
    """Accepts one client, answers its CONNECT with a CONNACK, sends ``data`` and drains what comes back."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(4096)  # CONNECT
            conn.sendall(b"\x20\x02\x00\x00" + self.data)
            while conn.recv(65536):
                pass
        self.listener.close()


def cpu_per_event(fn: Callable[[], int]) -> tuple[float, float]:
    """(CPU µs, wall µs) per event of ``fn`` (which returns how many events it handled)."""
    c0, w0 = time.thread_time(), time.perf_counter()
    n = fn()
    return (time.thread_time() - c0) * 1e6 / n, (time.perf_counter() - w0) * 1e6 / n


def run_once(n: int, packets: bytes, work: Path) -> dict[str, float]:
    stand_in = StandIn(packets)
    col = Collector(str(work / "bbt.db"), BrokerConfig(host="127.0.0.1", port=stand_in.port), client_id="bench-cpu")
    client = col.make_client()
    client.connect("127.0.0.1", stand_in.port, 60)
    msgs: list[Incoming] = []

    def receive() -> int:
        while len(msgs) < n:
            client.loop_read()
            while not col._q.empty():
                msgs.append(col._q.get_nowait())
        return n

    out: dict[str, float] = {}
    out["receive"], _ = cpu_per_event(receive)
    prepared: list[Any] = []

    def validate() -> int:
        prepared.extend(prepare(m) for m in msgs)
        return n
    out["validate"], _ = cpu_per_event(validate)
    batches = [prepared[i:i + BATCH] for i in range(0, n, BATCH)]

    def store() -> int:
        for b in batches:
            apply_batch(col.db, b, col.ack_handler)
        return n
    out["store"], out["store_wall"] = cpu_per_event(store)

    def ack() -> int:
        for i in range(0, n, BATCH):
            client.ack_many([(m.mid, m.qos) for m in msgs[i:i + BATCH]])
            while client.want_write():
                client.loop_write()
        return n
    out["ack"], _ = cpu_per_event(ack)
    client.disconnect()
    col.db.close()
    stored = len(prepared) - sum(p.kind == "rejected" for p in prepared)
    assert stored == n, f"{n - stored} of {n} messages were rejected"
    return out


def end_to_end(n: int, work: Path) -> dict[str, float]:
    """Process CPU per event and events/s of the whole collector draining ``n`` queued messages."""
    broker = Mosquitto(work / "mosquitto").start()
    try:
        cfg = BrokerConfig(host="127.0.0.1", port=broker.port)
        col = Collector(str(work / "e2e.db"), cfg, client_id="bench-e2e")
        col.start()  # subscribe once: the persistent session then queues what is published
        col.connected.wait(20)
        col.stop()
        pubs = Publishers(broker.port, n, 2)
        pubs.start()
        pubs.finish()
        col = Collector(str(work / "e2e.db"), cfg, client_id="bench-e2e")
        c0, w0 = time.process_time(), time.perf_counter()
        col.start()
        deadline = w0 + 300
        while col.totals.stored < n and time.perf_counter() < deadline:
            time.sleep(0.01)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        col.stop()
        assert col.totals.stored == n, f"stored {col.totals.stored} of {n}"
        return {"e2e_process_cpu": cpu * 1e6 / n, "e2e_events_per_s": n / wall}
    finally:
        broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--label", default="", help="what code this is (e.g. a branch and commit)")
    ap.add_argument("--baseline", type=Path, help="ingest_cpu.json of an earlier run (other code) to compare with")
    ap.add_argument("--merge", type=Path, nargs="+", help="measure nothing: report the best of these earlier runs "
                    "(of this code, e.g. taken in turn with the baseline's on a shared machine)")
    ap.add_argument("--out", type=Path, default=RESULTS / "ingest_cpu.json")
    args = ap.parse_args()
    load = [round(x, 1) for x in os.getloadavg()]
    runs: list[dict[str, float]] = []
    if args.merge:
        for path in args.merge:
            earlier = json.loads(path.read_text())
            runs += earlier["runs"]
            load = max(load, earlier["load_average_before"])
    else:
        packets = stream(args.events)
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bbt-cpu-") as tmp:
                runs.append(run_once(args.events, packets, Path(tmp)) | end_to_end(args.events, Path(tmp)))
                print(json.dumps({k: round(v, 1) for k, v in runs[-1].items()}), flush=True)
    out = report(runs, args, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    if args.out == RESULTS / "ingest_cpu.json":
        write_md(out)
    print(json.dumps(out["summary"]))


def report(runs: list[dict[str, float]], args: argparse.Namespace, load: list[float]) -> dict[str, Any]:
    best = {k: round(max(r[k] for r in runs) if k == "e2e_events_per_s" else min(r[k] for r in runs), 1)
            for k in runs[0]}
    best["total_cpu"] = round(sum(best[k] for k in STAGES), 1)
    out = {"machine": f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
           "events": args.events, "repeat": len(runs), "load_average_before": load, "best_us_per_event": best,
           "runs": runs, "label": args.label,
           "summary": {"cpu_us_per_event": best["total_cpu"], "e2e_process_cpu_us_per_event": best["e2e_process_cpu"],
                       "e2e_events_per_s": best["e2e_events_per_s"]}}
    if args.baseline:
        base = json.loads(args.baseline.read_text())
        out["baseline"] = {k: base[k] for k in ("label", "load_average_before", "repeat", "best_us_per_event")}
        b = base["best_us_per_event"]
        out["summary"] |= {"cpu_vs_baseline": round(b["total_cpu"] / best["total_cpu"], 2),
                           "e2e_cpu_vs_baseline": round(b["e2e_process_cpu"] / best["e2e_process_cpu"], 2)}
    return out


def write_md(out: dict[str, Any]) -> None:
    best, base = out["best_us_per_event"], out.get("baseline")
    lines = ["# Ingest CPU per event / 采集每条消息的 CPU 开销", "",
             f"Machine: {out['machine']}. {out['events']} single-event QoS 1 heartbeat messages of {DEVICES} "
             f"devices, best of {out['repeat']} runs (load average before: {out['load_average_before']}; the "
             "machine is shared, so single runs are noisy). µs of CPU of the thread doing the stage, per event.", ""]
    keys = (*STAGES, "total_cpu", "e2e_process_cpu", "e2e_events_per_s")
    names = {"total_cpu": "sum of the stages", "e2e_process_cpu": "end to end: process CPU (every thread)",
             "e2e_events_per_s": "end to end: events/s"}
    if base:
        b = base["best_us_per_event"]
        lines += [f"Before: {base['label']} (best of {base['repeat']}, load {base['load_average_before']}). "
                  f"Now: {out['label']}.", "", "| stage | before | now | before / now |", "|---|---|---|---|"]
        for k in keys:
            ratio = best[k] / b[k] if k == "e2e_events_per_s" else b[k] / best[k]
            lines.append(f"| {names.get(k, k)} | {b[k]:.1f} | {best[k]:.1f} | {ratio:.2f} |")
    else:
        lines += ["| stage | µs/event |", "|---|---|"] + [f"| {names.get(k, k)} | {best[k]:.1f} |" for k in keys]
    lines += ["", f"store wall time (incl. one fsync per batch of {BATCH}): {best['store_wall']} µs/event.",
              "End to end: the whole collector (network and writer threads) drains the stream from its persistent "
              "session on a real Mosquitto; events/s is the higher the better (its column is now / before).", "",
              "Reproduce: `.venv/bin/python bench/ingest_cpu.py [--baseline OTHER/ingest_cpu.json --label ...]`; on a "
              "shared machine take runs of both in turn (`--repeat 1 --out FILE`) and report the best of each "
              "(`--merge FILE...`).", ""]
    (RESULTS / "ingest_cpu.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
