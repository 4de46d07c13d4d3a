"""Run every benchmark of the project and write bench/results/SUMMARY.md, one markdown table.

Every ``bench/NAME.py`` (except this file and helpers named ``_NAME.py``) is a benchmark that writes
``bench/results/NAME.json`` (and ``NAME.md``); they are found, not listed, so a new one is picked up
by itself. Each runs in its own process, one after the other (they measure the machine: never two
at once), with its output shown as it goes. The summary takes each result's ``summary`` object when it has one,
else its top-level figures, and links the full report.

    .venv/bin/python bench/run_all.py                 # everything, full sizes (long)
    .venv/bin/python bench/run_all.py --quick         # smaller runs of the benchmarks that have presets
    .venv/bin/python bench/run_all.py --only district --only ingest
    .venv/bin/python bench/run_all.py --no-run        # just rebuild SUMMARY.md from the results there
    .venv/bin/python bench/run_all.py --args "usage=--repeat 3"
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
# smaller runs for --quick (a benchmark without a preset runs with its defaults)
QUICK = {
    "agent_footprint": ["--duration", "60", "--warmup", "10"],
    "alert_latency": ["--faults", "50"],
    "dashboard": ["--seconds", "8"],
    "district": ["--quick"],
    "ingest": ["--repeat", "1"],
    "server_ingest": ["--repeat", "1", "--rest-seconds", "8"],
    "usage": ["--repeat", "3", "--schools", "10"],
}
NOISE = {"machine", "when", "python", "cpus", "samples", "agent_cmd"}
MAX_FIGURES = 8


def discover() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_"))


def run(name: str, extra: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH / f"{name}.py"), *extra]
    print(f"\n=== {name}: {' '.join(shlex.quote(c) for c in cmd[1:])}", flush=True)
    t0 = time.monotonic()
    try:
        rc = subprocess.run(cmd, cwd=ROOT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    took = time.monotonic() - t0
    status = "ok" if rc == 0 else ("timed out" if rc == -1 else f"failed (exit {rc})")
    print(f"=== {name}: {status} in {took:.0f} s", flush=True)
    return {"status": status, "seconds": round(took), "args": extra}


def _scalar(v: Any) -> bool:
    return isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 40)


def figures(result: dict[str, Any]) -> list[tuple[str, Any]]:
    """What the summary shows of one result file."""
    if isinstance(result.get("summary"), dict):
        return [(k, v) for k, v in result["summary"].items() if _scalar(v) or v is None][:MAX_FIGURES]
    out: list[tuple[str, Any]] = []
    first = [k for k in result if "target" in k or k in ("pass", "ok")]
    for key in first + [k for k in result if k not in first]:
        value = result[key]
        if key in NOISE:
            continue
        if isinstance(value, dict):
            out += [(f"{key}.{k}", v) for k, v in value.items() if _scalar(v)]
        elif _scalar(value):
            out.append((key, value))
    return out[:MAX_FIGURES]


def fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "✅ yes" if v else "❌ no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def summary(names: list[str], runs: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name in names:
        path = RESULTS / f"{name}.json"
        r = runs.get(name)
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as e:
                data = {"unreadable": str(e)[:40]}
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
            figs = "<br>".join(f"{k}: {fmt(v)}" for k, v in figures(data)) if isinstance(data, dict) else ""
        else:
            when, figs = "—", "no results yet"
        status = r["status"] if r else "not run now"
        took = f"{r['seconds']} s" if r else "—"
        report = f"[{name}.md]({name}.md)" if (RESULTS / f"{name}.md").exists() else "—"
        rows.append(f"| {name} | {status} | {took} | {when} | {figs} | {report} |")
    head = [
        "# Benchmarks / 基准测试汇总", "",
        f"Written by `bench/run_all.py` on {platform.node()} ({platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}), {time.strftime('%Y-%m-%d %H:%M')}.",
        "Each benchmark's own report has the method, the targets and the full figures.", "",
        "| benchmark | this run | took | results from | figures | report |", "|---|---|---|---|---|---|",
    ]
    return "\n".join(head + rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="run only this benchmark (repeatable)")
    ap.add_argument("--skip", action="append", default=[], help="do not run this benchmark (repeatable)")
    ap.add_argument("--quick", action="store_true", help="smaller runs where a preset exists")
    ap.add_argument("--no-run", action="store_true", help="only rebuild SUMMARY.md from existing results")
    ap.add_argument("--args", action="append", default=[], metavar="NAME=ARGS", help="extra arguments for one")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per benchmark at most")
    a = ap.parse_args()
    names = discover()
    unknown = sorted(set(a.only + a.skip) - set(names))
    if unknown:
        sys.exit(f"no such benchmark: {', '.join(unknown)} (found: {', '.join(names)})")
    extra: dict[str, list[str]] = {n: list(QUICK.get(n, [])) if a.quick else [] for n in names}
    for item in a.args:
        name, sep, args = item.partition("=")
        if not sep or name not in names:
            sys.exit(f"--args {item!r}: use NAME=ARGS with NAME one of {', '.join(names)}")
        extra[name] += shlex.split(args)
    todo = [n for n in names if (not a.only or n in a.only) and n not in a.skip]
    runs = {} if a.no_run else {n: run(n, extra[n], a.timeout) for n in todo}
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = summary(names, runs)
    (RESULTS / "SUMMARY.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    if any(r["status"] != "ok" for r in runs.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
