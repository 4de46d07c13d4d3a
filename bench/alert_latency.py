"""Alert latency: from a classroom PC's fault event to the WeCom bot's webhook, at group_wait 0.

    .venv/bin/python bench/alert_latency.py [--faults 200] [--devices 20] [--spacing 0.25]

A real Mosquitto, the collector (batched durable commits, ack after commit), the alert engine
and its apprise delivery thread, simulated PCs (bbt/sim.py) publishing ``fault`` events, and a
local HTTP receiver in the place of qyapi.weixin.qq.com. Latency = the receiver's arrival time
minus the moment just before the PC published the event. The channel's rate limit is lifted
(the bot's 20/min would otherwise dominate): this measures bbt's own path.
Writes bench/results/alert_latency.json and .md. Target: p95 <= 5 s.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.alert_rig import Rig, school_config  # noqa: E402
from tests.brokers import Mosquitto  # noqa: E402
from tests.webhook import WebhookReceiver  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_P95_S = 5.0


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, round(p / 100 * (len(xs) - 1))))
    return xs[k]


def run(n_faults: int, n_devices: int, spacing: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, WebhookReceiver() as receiver:
        broker = Mosquitto(Path(tmp) / "mosquitto").start()
        rig = Rig(Path(tmp), broker.port, receiver)
        try:
            names = [f"pc-{i:03d}" for i in range(n_devices)]
            rig.import_devices([(n, f"{300 + i}", "教学楼", "3") for i, n in enumerate(names)])
            cfg = school_config(receiver, group_wait_s=0, group_by=["fingerprint"])
            cfg["channels"]["maint"]["rate_per_min"] = 1_000_000
            rig.configure(cfg)
            rig.start()
            rig.power_on(names)
            time.sleep(1.0)
            sent: dict[str, float] = {}
            for i in range(n_faults):
                code = f"bench_{i:04d}"
                sent[code] = time.time()
                rig.fault(names[i % n_devices], code, "warning")
                time.sleep(spacing)
            deadline = time.time() + 30
            got: dict[str, float] = {}
            while time.time() < deadline and len(got) < n_faults:
                for m in receiver.of("wecom"):
                    for code in re.findall(r"\((bench_\d{4})\)", m.text):
                        got.setdefault(code, m.t)
                time.sleep(0.1)
        finally:
            rig.stop()
            broker.stop()
    lat = [got[c] - sent[c] for c in sent if c in got]
    return {
        "faults": n_faults, "devices": n_devices, "spacing_s": spacing, "received": len(lat),
        "messages": len(receiver.of("wecom")), "group_wait_s": 0,
        "p50_s": round(statistics.median(lat), 3) if lat else None,
        "p95_s": round(pct(lat, 95), 3) if lat else None,
        "max_s": round(max(lat), 3) if lat else None, "min_s": round(min(lat), 3) if lat else None,
        "target_p95_s": TARGET_P95_S, "python": platform.python_version(), "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def write(res: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "alert_latency.json").write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")
    ok = res["p95_s"] is not None and res["p95_s"] <= TARGET_P95_S and res["received"] == res["faults"]
    md = f"""# Alert latency: agent event -> WeCom webhook (group_wait 0)

`bench/alert_latency.py` — real Mosquitto, collector, alert engine + apprise delivery thread,
{res['devices']} simulated PCs publishing {res['faults']} `fault` events {res['spacing_s']} s apart,
a local HTTP receiver in the place of the WeCom bot endpoint. Latency = arrival at the receiver
minus the moment before the PC published.

| figure | value |
|---|---|
| faults published | {res['faults']} |
| alerts received | {res['received']} (in {res['messages']} messages) |
| p50 | {res['p50_s']} s |
| p95 | {res['p95_s']} s |
| min / max | {res['min_s']} s / {res['max_s']} s |
| target | p95 <= {TARGET_P95_S} s: {'met' if ok else 'NOT met'} |

Machine: {res['cpus']} CPUs, {res['machine']}, Python {res['python']}; run {res['when']}.
In production group_wait (default 30 s) is added on purpose, so that a floor losing power
becomes one message.
"""
    (RESULTS / "alert_latency.md").write_text(md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--devices", type=int, default=20)
    ap.add_argument("--spacing", type=float, default=0.25)
    a = ap.parse_args()
    res = run(a.faults, a.devices, a.spacing)
    write(res)
    print(json.dumps(res, ensure_ascii=False))


if __name__ == "__main__":
    main()
