"""Resident memory and CPU of the bbt agent over 10 minutes at default settings, side by side
with Glances exporting to the same Mosquitto at the same interval (60 s).

    .venv/bin/python bench/agent_footprint.py [--duration 600] [--interval 5]

Writes bench/results/agent_footprint.json and .md (with an SVG chart of resident memory).
Both programs start together; CPU is counted from the end of a warm-up (imports, first scans,
the first inventory) to the end, and also from start to end. Targets: <= 30 MB resident,
<= 0.2% of one core, and at most a tenth of Glances' CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.brokers import Mosquitto  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_RSS_MB, TARGET_CPU_PCT, TARGET_RATIO = 30.0, 0.2, 10.0


def cpu_seconds(p: psutil.Process) -> float:
    """CPU of the process and of its children (the agent runs loginctl/dpkg-query now and then)."""
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for c in p.children(recursive=True):
        try:
            ct = c.cpu_times()
            total += ct.user + ct.system
        except psutil.Error:
            pass
    return total


Proc = subprocess.Popen[bytes]


def start(tmp: Path, broker: Mosquitto, agent_cmd: list[str]) -> tuple[Proc, Proc]:
    env = dict(os.environ, BBT_AGENT_DATA_DIR=str(tmp / "agent"))
    agent = subprocess.Popen(agent_cmd + ["--broker", broker.url, "--school", "bench", "--device", "pc-bench"],
                             cwd=ROOT, env=env, stdout=(tmp / "agent.log").open("wb"), stderr=subprocess.STDOUT)
    conf = tmp / "glances.conf"
    conf.write_text("[mqtt]\nhost=127.0.0.1\nport=%d\ntls=false\nuser=glances\npassword=glances\n"
                    "topic=glances\ntopic_structure=per-plugin\n" % broker.port)
    glances = subprocess.Popen([str(Path(sys.executable).with_name("glances")), "-C", str(conf), "--export", "mqtt",
                                "--quiet", "-t", "60", "--disable-webui"],
                               cwd=tmp, stdout=(tmp / "glances.log").open("wb"), stderr=subprocess.STDOUT)
    return agent, glances


def measure(duration: float, interval: float, warmup: float, agent_cmd: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        broker = Mosquitto(tmp / "mosquitto").start()
        agent, glances = start(tmp, broker, agent_cmd)
        procs = {"agent": psutil.Process(agent.pid), "glances": psutil.Process(glances.pid)}
        t0 = time.monotonic()
        samples: list[dict[str, Any]] = []
        marks: dict[str, dict[str, float]] = {}
        try:
            while True:
                el = time.monotonic() - t0
                row: dict[str, Any] = {"t": round(el, 1)}
                for name, p in procs.items():
                    row[name + "_rss_mb"] = round(p.memory_info().rss / 2 ** 20, 2)
                    row[name + "_cpu_s"] = round(cpu_seconds(p), 3)
                samples.append(row)
                if "warm" not in marks and el >= warmup:
                    marks["warm"] = {"t": el, **{n: row[n + "_cpu_s"] for n in procs}}
                if el >= duration:
                    break
                time.sleep(min(interval, max(0.0, duration - el)))
                progress = int(100 * el / duration)
                print("\rmeasuring %3d%%  agent %.1f MB  glances %.1f MB" % (
                    progress, row["agent_rss_mb"], row["glances_rss_mb"]), end="", file=sys.stderr, flush=True)
        finally:
            print(file=sys.stderr)
            for p in (agent, glances):
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            broker.stop()
        end = samples[-1]
        out: dict[str, Any] = {"samples": samples}
        for n in procs:
            rss = [s[n + "_rss_mb"] for s in samples if s["t"] >= warmup]
            steady = 100 * (end[n + "_cpu_s"] - marks["warm"][n]) / (end["t"] - marks["warm"]["t"])
            out[n] = {"rss_mb_avg": round(sum(rss) / len(rss), 2), "rss_mb_max": max(rss),
                      "cpu_pct_steady": round(steady, 4), "cpu_pct_total": round(100 * end[n + "_cpu_s"] / end["t"], 4),
                      "cpu_s_total": end[n + "_cpu_s"]}
        return out


def chart(samples: list[dict[str, Any]], path: Path) -> None:
    """Resident memory over time of both programs, as a small SVG."""
    w, h, pad = 640, 240, 40
    tmax = max(s["t"] for s in samples) or 1
    ymax = max(max(s["agent_rss_mb"], s["glances_rss_mb"]) for s in samples) * 1.1
    def pts(key: str) -> str:
        xs = [pad + (w - 2 * pad) * s["t"] / tmax for s in samples]
        ys = [h - pad - (h - 2 * pad) * s[key] / ymax for s in samples]
        return " ".join("%.1f,%.1f" % xy for xy in zip(xs, ys, strict=True))
    y30 = h - pad - (h - 2 * pad) * TARGET_RSS_MB / ymax
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">'
           % (w, h), '<rect width="100%" height="100%" fill="white"/>',
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (pad, h - pad, w - pad, h - pad),
           '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999"/>' % (pad, pad, pad, h - pad),
           '<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c00" stroke-dasharray="4"/>' % (pad, y30, w - pad, y30),
           '<text x="%d" y="%.1f" fill="#c00">30 MB 目标 / target</text>' % (w - pad - 110, y30 - 4),
           '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>'.format(pts("agent_rss_mb")),
           '<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="{}"/>'.format(pts("glances_rss_mb")),
           '<text x="%d" y="16">常驻内存 MB / resident memory MB — <tspan fill="#1f77b4">bbt agent</tspan>, '
           '<tspan fill="#ff7f0e">Glances</tspan></text>' % pad,
           '<text x="%d" y="%d">0</text><text x="%d" y="%d">%.0f s</text>' % (pad, h - pad + 14, w - pad - 30,
                                                                                  h - pad + 14, tmax),
           '<text x="4" y="%d">%.0f</text>' % (pad + 4, ymax), "</svg>"]
    path.write_text("\n".join(svg) + "\n", encoding="utf-8")


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    a, g = res["agent"], res["glances"]
    ratio = g["cpu_pct_steady"] / a["cpu_pct_steady"] if a["cpu_pct_steady"] > 0 else float("inf")
    checks = {"rss": a["rss_mb_max"] <= TARGET_RSS_MB, "cpu": a["cpu_pct_steady"] <= TARGET_CPU_PCT,
              "ratio": ratio >= TARGET_RATIO}
    summary = {"duration_s": args.duration, "warmup_s": args.warmup, "interval_s": args.interval,
               "agent_cmd": " ".join(args.agent_cmd), "machine": "%s, %d CPUs, Python %s" % (
                   platform.platform(), psutil.cpu_count(), platform.python_version()),
               "agent": a, "glances": g, "glances_over_agent_cpu": round(ratio, 1), "targets_met": checks,
               "samples": res["samples"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agent_footprint.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    chart(res["samples"], RESULTS / "agent_footprint.svg")
    ok = lambda b: "✅ met" if b else "❌ missed"  # noqa: E731
    md = f"""# Agent footprint / 客户端资源占用

Both programs ran at the same time for {args.duration:.0f} s on {summary['machine']}, exporting to the same
Mosquitto every 60 s (agent: default settings — heartbeat 60 s, usage 20 s, program scan 10 s, faults
60 s; Glances: `--export mqtt -t 60`). CPU "steady" counts from {args.warmup:.0f} s (after start-up) to
the end; "total" from the start. Children (e.g. loginctl, dpkg-query) are included.

| | bbt agent | Glances | target (agent) |
|---|---|---|---|
| resident memory, average (MB) | {a['rss_mb_avg']} | {g['rss_mb_avg']} | |
| resident memory, maximum (MB) | {a['rss_mb_max']} | {g['rss_mb_max']} | <= {TARGET_RSS_MB:.0f}: {ok(checks['rss'])} |
| CPU, steady (% of one core) | {a['cpu_pct_steady']:.3f} | {g['cpu_pct_steady']:.3f} | \
<= {TARGET_CPU_PCT}: {ok(checks['cpu'])} |
| CPU, total incl. start-up (% of one core) | {a['cpu_pct_total']:.3f} | {g['cpu_pct_total']:.3f} | |
| CPU seconds in the run | {a['cpu_s_total']:.2f} | {g['cpu_s_total']:.2f} | |
| Glances CPU / agent CPU (steady) | | {summary['glances_over_agent_cpu']}x | \
>= {TARGET_RATIO:.0f}x: {ok(checks['ratio'])} |

Agent command: `{summary['agent_cmd']}`

![resident memory](agent_footprint.svg)

Reproduce: `.venv/bin/python bench/agent_footprint.py` (10 minutes).
"""
    (RESULTS / "agent_footprint.md").write_text(md, encoding="utf-8")
    print(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--agent-cmd", nargs="+", default=[sys.executable, "-m", "agent"],
                    help="how to start the agent (default: the lean entry point the service uses)")
    args = ap.parse_args()
    report(measure(args.duration, args.interval, args.warmup, args.agent_cmd), args)


if __name__ == "__main__":
    main()
