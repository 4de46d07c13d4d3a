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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.brokers import Mosquitto, TcpProxy  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TARGET_RSS_MB, TARGET_CPU_PCT, TARGET_RATIO = 30.0, 0.2, 10.0


def own_cpu_seconds(p: psutil.Process) -> float:
    """The process's CPU time with nanosecond resolution (Linux: its CPU-time clock, exited threads
    included); psutil's cpu_times() counts in 10 ms ticks, too coarse for a process that spends a few
    milliseconds a minute."""
    try:
        return time.clock_gettime(((~p.pid) << 3) | 2)  # clock_getcpuclockid(pid): CPUCLOCK_SCHED
    except OSError:
        t = p.cpu_times()
        return t.user + t.system


def cpu_seconds(p: psutil.Process) -> float:
    """CPU of the process and of its children (the agent runs loginctl/dpkg-query now and then)."""
    t = p.cpu_times()
    total = own_cpu_seconds(p) + t.children_user + t.children_system
    for c in p.children(recursive=True):
        try:
            total += own_cpu_seconds(c)
        except psutil.Error:
            pass
    return total


Proc = subprocess.Popen[bytes]


def find_python38() -> str | None:
    """Python 3.8: what the frozen agent for Windows 7 PCs is built with (docs/agent-build.md)."""
    cands = [str(c) for c in sorted(Path(os.path.expanduser("~/.pyenv/versions")).glob("3.8*/bin/python"))]
    cands += [c for c in (shutil.which("python3.8"),) if c]
    for cand in cands:
        r = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2] == (3, 8))"],
                           capture_output=True, text=True, check=False)
        if r.stdout.strip() == "True":
            return cand
    return None


def agent_venv(folder: Path, python: str) -> Path:
    """A clean virtualenv with bbt[agent] installed from a copy of this tree: how a classroom PC gets it
    (no editable-install hooks, no server packages). Returns its python."""
    src = folder / "src"
    if not src.exists():
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "*.egg-info", "__pycache__", "bbt-demo", "node_modules", "test-artifacts"))
    venv = folder / ("venv-%d" % len(list(folder.glob("venv-*"))))
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(src) + "[agent]"], check=True)
    return py


EOD_SCHOOL = "bench-eod"  # its policy sets an end-of-day shutdown: the agent loads APScheduler for it


def publish_eod_policy(broker: Mosquitto) -> None:
    """A retained policy with ``shutdown_after`` 23:59 (nothing shuts down during the run) for EOD_SCHOOL."""
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-r", "-t", f"bbt/v1/{EOD_SCHOOL}/policy",
                    "-m", json.dumps({"shutdown_after": "23:59"})], check=True)


def start_agent(tmp: Path, broker: Mosquitto, name: str, cmd: list[str]) -> Proc:
    # as the systemd unit (agent/install.py) runs it
    env = dict(os.environ, BBT_AGENT_DATA_DIR=str(tmp / name), MALLOC_ARENA_MAX="2")
    school = EOD_SCHOOL if name.endswith("-eod") else "bench"
    with (tmp / (name + ".log")).open("wb") as log:
        return subprocess.Popen(cmd + ["--broker", broker.url, "--school", school, "--device", name],
                                cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)


GLANCES_CONNACK_DELAY_S = 0.5


def start_glances(tmp: Path, broker: Mosquitto) -> tuple[Proc, TcpProxy]:
    """Glances exporting to the broker through a relay that holds the CONNACK back 0.5 s.

    Glances 4.5 starts paho's network thread before it keeps the client object that its on_connect
    callback uses. A CONNACK that comes back at once (Mosquitto on the same machine) makes the callback
    fail, paho's thread dies, and Glances exports nothing for the rest of the run. Over a real network the
    CONNACK takes a round trip; the relay gives it one, so Glances runs as its users see it. The run counts
    what each program delivered to the broker and is void if Glances delivered nothing."""
    relay = TcpProxy(broker.port, connack_delay=GLANCES_CONNACK_DELAY_S)
    conf = tmp / "glances.conf"
    conf.write_text("[mqtt]\nhost=127.0.0.1\nport=%d\ntls=false\nuser=glances\npassword=glances\n"
                    "topic=glances\ntopic_structure=per-plugin\ndevicename=glances\n" % relay.port)
    glances = subprocess.Popen([str(Path(sys.executable).with_name("glances")), "-C", str(conf), "--export", "mqtt",
                                "--quiet", "-t", "60", "--disable-webui"],
                               cwd=tmp, stdout=(tmp / "glances.log").open("wb"), stderr=subprocess.STDOUT)
    return glances, relay


def start_counter(tmp: Path, broker: Mosquitto) -> tuple[Proc, Path]:
    """Everything the programs deliver to the broker, one line per message (topic only)."""
    out = tmp / "delivered.txt"
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(broker.port), "-t", "glances/#", "-t", "bbt/v1/+/+/events",
                            "-F", "%t"], stdout=out.open("wb"), stderr=subprocess.DEVNULL)
    return sub, out


def device_name(program: str) -> str:
    """The device id a benchmark agent reports as (``agent_py38`` -> ``agent-py38``)."""
    return program.replace("_", "-")


def delivered(path: Path, programs: list[str]) -> dict[str, dict[str, int]]:
    """Messages each program delivered; for Glances also its exports (one ``cpu`` message per refresh)."""
    topics = path.read_text(encoding="utf-8", errors="replace").split()
    out: dict[str, dict[str, int]] = {}
    for name in programs:
        if name == "glances":
            mine = [t for t in topics if t.startswith("glances/")]
            out[name] = {"messages": len(mine), "exports": sum(1 for t in mine if t == "glances/glances/cpu")}
        else:
            out[name] = {"messages": sum(1 for t in topics if t.split("/")[3:4] == [device_name(name)])}
    return out


def measure(duration: float, interval: float, warmup: float, agent_cmds: dict[str, list[str]]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not agent_cmds:
            py38 = find_python38()
            for label, py in (("agent_py38", py38), ("agent_py311", sys.executable)):
                if py:
                    agent_cmds[label] = [str(agent_venv(tmp / "install", py)), "-m", "agent"]
            agent_cmds["agent_py311_eod"] = agent_cmds["agent_py311"]
        broker = Mosquitto(tmp / "mosquitto").start()
        publish_eod_policy(broker)
        children = {name: start_agent(tmp, broker, device_name(name), cmd) for name, cmd in agent_cmds.items()}
        counter, delivered_log = start_counter(tmp, broker)
        children["glances"], relay = start_glances(tmp, broker)
        procs = {name: psutil.Process(p.pid) for name, p in children.items()}
        t0 = time.monotonic()
        samples: list[dict[str, Any]] = []
        marks: dict[str, dict[str, float]] = {}
        seen_pids, new_pids = set(psutil.pids()), 0  # process starts on the machine: what the scan pays for
        try:
            while True:
                el = time.monotonic() - t0
                row: dict[str, Any] = {"t": round(el, 1)}
                for name, p in procs.items():
                    row[name + "_rss_mb"] = round(p.memory_info().rss / 2 ** 20, 2)
                    row[name + "_cpu_s"] = round(cpu_seconds(p), 6)
                now_pids = set(psutil.pids())
                new_pids += len(now_pids - seen_pids)
                seen_pids = now_pids
                row["new_processes"] = new_pids
                samples.append(row)
                if "warm" not in marks and el >= warmup:
                    marks["warm"] = {"t": el, **{n: row[n + "_cpu_s"] for n in procs}}
                if el >= duration:
                    break
                time.sleep(min(interval, max(0.0, duration - el)))
                print("\rmeasuring %3d%%  " % int(100 * el / duration) + "  ".join(
                    "%s %.1f MB" % (n, row[n + "_rss_mb"]) for n in procs), end="", file=sys.stderr, flush=True)
        finally:
            print(file=sys.stderr)
            for p in children.values():
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            counter.terminate()
            counter.wait()
            relay.close()
            broker.stop()
        end = samples[-1]
        sent = delivered(delivered_log, list(procs))
        if not sent["glances"]["exports"]:
            log = (tmp / "glances.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise SystemExit("Glances delivered no export to the broker: the comparison is void. Its log ends:\n"
                             + log)
        out: dict[str, Any] = {"samples": samples, "programs": list(procs),
                               "processes_started_per_min": round(60 * new_pids / samples[-1]["t"], 1),
                               "commands": {n: " ".join(c) for n, c in agent_cmds.items()}}
        for n in procs:
            rss = [s[n + "_rss_mb"] for s in samples if s["t"] >= warmup]
            steady = 100 * (end[n + "_cpu_s"] - marks["warm"][n]) / (end["t"] - marks["warm"]["t"])
            out[n] = {"rss_mb_avg": round(sum(rss) / len(rss), 2), "rss_mb_max": max(rss),
                      "cpu_pct_steady": round(steady, 4), "cpu_ms_per_min_steady": round(steady * 600, 2),
                      "cpu_pct_total": round(100 * end[n + "_cpu_s"] / end["t"], 4),
                      "cpu_s_total": end[n + "_cpu_s"], **sent[n]}
        return out


COLORS = {"agent_py38": "#1f77b4", "agent_py311": "#2ca02c", "agent_py311_eod": "#9467bd", "glances": "#ff7f0e"}
LABELS = {"agent_py38": "bbt agent (Python 3.8)", "agent_py311": "bbt agent (Python 3.11)",
          "agent_py311_eod": "bbt agent (Python 3.11, end-of-day shutdown policy)", "glances": "Glances"}


def probe_costs(runs: int = 8, pause: float = 0.5) -> list[dict[str, Any]]:
    """Where the agent's CPU goes: each probe run ``runs`` times in this process (this machine's processes,
    disks, /proc), each run after a pause as in the agent (a run after a pause costs several times what a
    run straight after another does: caches are cold); with the default periods, the CPU each costs per
    minute."""
    from agent.config import load_config
    from agent.context import Context
    from agent.outbox import Outbox
    from agent.probes import all_probes

    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(None, {"school": "bench", "device": "probe-costs", "data_dir": d}, environ={})
        ctx = Context(cfg, Outbox(os.path.join(d, "outbox.db")))
        rows = []
        for p in all_probes():
            p.setup(ctx)
            spent = 0.0
            for _ in range(runs):
                time.sleep(pause)
                t0 = time.thread_time()
                p.run(ctx)
                spent += time.thread_time() - t0
            per_run = spent / runs * 1000
            iv = p.interval(ctx) or 0
            rows.append({"probe": p.name, "period_s": iv, "ms_per_run": round(per_run, 3),
                         "ms_per_min": round(per_run * 60 / iv, 2) if iv else 0.0})
            p.close()
        ctx.outbox.close()
    return rows


def chart(samples: list[dict[str, Any]], programs: list[str], path: Path) -> None:
    """Resident memory over time of every program, as a small SVG."""
    w, h, pad = 640, 240, 40
    tmax = max(s["t"] for s in samples) or 1
    ymax = max(s[p + "_rss_mb"] for s in samples for p in programs) * 1.1

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
           '<text x="%d" y="16">常驻内存 MB / resident memory MB</text>' % pad]
    for i, p in enumerate(programs):
        svg.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (COLORS.get(p, "#000"),
                                                                                       pts(p + "_rss_mb")))
        svg.append('<text x="%d" y="%d" fill="%s">%s</text>' % (pad + 10 + 190 * i, 30, COLORS.get(p, "#000"),
                                                                LABELS.get(p, p)))
    svg += ['<text x="%d" y="%d">0</text><text x="%d" y="%d">%.0f s</text>' % (pad, h - pad + 14, w - pad - 30,
                                                                              h - pad + 14, tmax),
            '<text x="4" y="%d">%.0f</text>' % (pad + 4, ymax), "</svg>"]
    path.write_text("\n".join(svg) + "\n", encoding="utf-8")


def report(res: dict[str, Any], args: argparse.Namespace) -> None:
    g = res["glances"]
    agents = [p for p in res["programs"] if p != "glances"]
    verdicts: dict[str, dict[str, bool]] = {}
    for name in agents:
        a = res[name]
        ratio = g["cpu_pct_steady"] / a["cpu_pct_steady"] if a["cpu_pct_steady"] > 0 else float("inf")
        a["glances_over_agent_cpu"] = round(ratio, 1)
        verdicts[name] = {"rss": a["rss_mb_max"] <= TARGET_RSS_MB, "cpu": a["cpu_pct_steady"] <= TARGET_CPU_PCT,
                          "ratio": ratio >= TARGET_RATIO}
    summary = {"duration_s": args.duration, "warmup_s": args.warmup, "interval_s": args.interval,
               "commands": res["commands"], "machine": "%s, %d CPUs" % (platform.platform(), psutil.cpu_count()),
               "processes_started_per_min": res["processes_started_per_min"],
               **{p: res[p] for p in res["programs"]}, "targets_met": verdicts, "probe_costs": res["probe_costs"],
               "samples": res["samples"]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "agent_footprint.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    chart(res["samples"], res["programs"], RESULTS / "agent_footprint.svg")

    def ok(b: bool) -> str:
        return "✅" if b else "❌"

    head = "| | " + " | ".join(LABELS.get(p, p) for p in res["programs"]) + " | target (agent) |"
    rows = [head, "|---" * (len(res["programs"]) + 2) + "|"]

    def row(label: str, key: str, fmt: str, target: str = "", check: str = "") -> None:
        cells = []
        for p in res["programs"]:
            v = res[p].get(key)
            mark = (" " + ok(verdicts[p][check])) if check and p in verdicts else ""
            cells.append((fmt % v if v is not None else "") + mark)
        rows.append("| %s | %s | %s |" % (label, " | ".join(cells), target))

    row("resident memory, average (MB)", "rss_mb_avg", "%.1f")
    row("resident memory, maximum (MB)", "rss_mb_max", "%.1f", "<= %.0f MB" % TARGET_RSS_MB, "rss")
    row("CPU, steady (% of one core)", "cpu_pct_steady", "%.3f", "<= %.1f %%" % TARGET_CPU_PCT, "cpu")
    row("CPU, steady (ms per minute)", "cpu_ms_per_min_steady", "%.2f")
    row("CPU, total incl. start-up (% of one core)", "cpu_pct_total", "%.3f")
    row("CPU seconds in the run", "cpu_s_total", "%.3f")
    row("MQTT messages delivered to the broker", "messages", "%d")
    row("Glances CPU / agent CPU (steady)", "glances_over_agent_cpu", "%.1fx", ">= %.0fx" % TARGET_RATIO, "ratio")
    costs = "\n".join("| %s | %.0f | %.3f | %.2f |" % (c["probe"], c["period_s"], c["ms_per_run"], c["ms_per_min"])
                      for c in res["probe_costs"])
    glances_ms = 600 * res["glances"]["cpu_pct_steady"]  # % of a core -> ms per minute
    cmds = "\n".join("- %s: `%s`" % (LABELS.get(n, n), c) for n, c in res["commands"].items())
    md = f"""# Agent footprint / 客户端资源占用

All programs ran at the same time for {args.duration:.0f} s on {summary['machine']}, exporting to the same
Mosquitto every 60 s (agent: default settings — usage and power every 30 s, USB woken by the kernel's device
events, heartbeat and faults every 60 s, the program scan woken by the kernel's exec events and polling them
every 12 s while programs keep starting, all run from one loop thread that shares wake-ups; Glances:
`--export mqtt -t 60`, through a relay that holds its CONNACK back {GLANCES_CONNACK_DELAY_S} s, see below).
Every program's messages are counted at the broker: the run is void if Glances delivered no export.
CPU "steady" counts from {args.warmup:.0f} s (after start-up) to the end; "total" from
the start; children (loginctl, dpkg-query) included. Each agent runs from a clean virtualenv with
`bbt[agent]` installed, as on a classroom PC, with `MALLOC_ARENA_MAX=2` as the systemd unit sets it.
Python 3.8 is what the frozen agent for Windows 7 PCs is built with. The third agent's school has a policy
with an end-of-day shutdown (`shutdown_after`), the one job the agent gives APScheduler: it loads APScheduler only then.

{chr(10).join(rows)}

{cmds}
- Glances: `glances --export mqtt --quiet -t 60 --disable-webui`

![resident memory](agent_footprint.svg)

Glances 4.5 starts paho's network thread before it keeps the client object that its on_connect callback
uses: when the CONNACK comes back at once, as from a Mosquitto on the same machine, the callback fails,
paho's thread dies and Glances exports nothing for the rest of the run (`AttributeError: 'Export' object has
no attribute 'client'` in its log). Earlier runs of this benchmark did not notice. It changes Glances' CPU
little (side by side for 7 minutes: 685 ms without a working export, 693 ms with one), but a Glances that
exports nothing is not the comparison asked for. The relay gives the CONNACK the round trip of a real
network, so Glances works as its users run it: it delivered {res["glances"]["exports"]} exports
({res["glances"]["messages"]} messages) in this run.

## Where the agent's CPU goes / CPU 去向

Each probe run 8 times in the benchmark process on this machine, each after a 0.5 s pause as in the
agent, and what that costs per minute at the default periods (the rest of the agent's CPU is waking its
threads, the MQTT loop and SQLite writes):

| probe | period (s) | ms CPU per run | ms CPU per minute |
|---|---|---|---|
{costs}

Glances at a 60 s refresh spends {glances_ms:.1f} ms of CPU per minute and does nothing in between; the agent
must look for new programs every 12 s (a denied program reported within 15 s) and decide "in use" every
15-30 s, so 10x less than Glances would leave it {glances_ms / 10:.1f} ms per minute for all of that. On this
virtual machine every wake-up after an idle pause is expensive: a thread that sleeps 0.2 s and wakes costs
about 0.1 ms of CPU, and the first system calls after it several times what they cost warm (reading
/proc/loadavg: 0.02 ms warm, 0.15 ms after a pause). So the agent wakes as rarely as it can: one loop
thread drives paho, the probes and the outbox through one select(), a probe runs early only to spare a
wake-up of its own, and the PUBACK is awaited in the wake-up that sent; on a quiet PC that is two wake-ups a
minute. On Linux the program scan waits on the kernel's exec events (netlink, filtered in the kernel) while
nothing starts, and polls them every 12 s while programs keep starting: on this machine RabbitMQ runs `df`
every 10 s (seen through the same exec events: about 18 program starts a minute, most gone before anyone
looks), so the agent here wakes five times a minute, as often as a 12 s poll; the sampler below only sees
processes alive at its 5 s samples ({res["processes_started_per_min"]:.0f} a minute). APScheduler is kept
for the clock-time end-of-day job; what does not change is kept in memory instead of re-read (USB state,
the next seq, the drop report, the compiled software policy), "last seen alive" is a file's mtime, the
heartbeat and the fault check share one pread of /proc/meminfo and one statvfs, and events are sent as
stored.
Memory: without the end-of-day policy the agent does not load APScheduler and its modules (asyncio,
concurrent.futures with multiprocessing, importlib.metadata with zipfile), about 4 MB under Python 3.11.

Reproduce: `.venv/bin/python bench/agent_footprint.py` (10 minutes; Python 3.8 is looked up on PATH and
under ~/.pyenv).
"""
    (RESULTS / "agent_footprint.md").write_text(md, encoding="utf-8")
    print(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=30.0)
    ap.add_argument("--agent-cmd", nargs="+", default=[],
                    help="how to start the agent instead (default: python -m agent — what the service runs — "
                         "from clean virtualenvs with bbt[agent], under Python 3.8 and this Python)")
    args = ap.parse_args()
    cmds: dict[str, list[str]] = {"agent": args.agent_cmd} if args.agent_cmd else {}
    costs = probe_costs()
    res = measure(args.duration, args.interval, args.warmup, cmds)
    res["probe_costs"] = costs
    report(res, args)


if __name__ == "__main__":
    main()
