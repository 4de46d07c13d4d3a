"""Dashboard latency benchmark: a 200-classroom school with a term of data, 20 concurrent users.

    .venv/bin/python bench/dashboard.py [--classes 200] [--users 20] [--seconds 15]

Dataset: one school of ``--classes`` classrooms (5 buildings × 4 floors), 8 periods a day, 40
lessons a week per class, the autumn term from 2026-09-01 up to yesterday through the real
attribution into the ``lesson_usage`` rollup (as the daily update stores it), and today's raw
events at agent density (a heartbeat a minute and a session per used lesson, from 07:30 until
now) so that the overview's "today" is computed from events. Every device has a live state
(in use / idle / off / offline / faulty).

The server is the dashboard as `bbt server` serves it (waitress, 8 threads) in its own process.
Each of ``--users`` client threads keeps one HTTP/1.1 connection (a signed-in headteacher, by
API token) and requests one endpoint in a loop for ``--seconds``; latency is measured per
request, client side. Endpoints, one after the other: a static file (the floor), the overview
page, the overview's refresh JSON, the weekly teacher table page and the protocol.md §4
usage/teachers API. Target: p95 <= 150 ms for the overview and the weekly teacher table.

Writes bench/results/dashboard.json and dashboard.md.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.usage import _ts, timetable_lines, write_csvs  # noqa: E402
from collector import migrations  # noqa: E402
from collector.db import Database, connect  # noqa: E402
from collector.devices.registry import ensure_school  # noqa: E402
from collector.lessons.attribution import attribute  # noqa: E402
from collector.lessons.school_calendar import iso_week  # noqa: E402
from collector.lessons.timetable import lessons_on  # noqa: E402
from collector.rates import usage  # noqa: E402
from collector.school.imports import run_import  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TZ = ZoneInfo("Asia/Shanghai")
SCHOOL = "bench"
TERM_START = date(2026, 9, 1)
TARGET_P95_MS = 150.0


def write_school(folder: Path, classes: int) -> dict[str, Path]:
    dev = ["device,class,room,building,floor"]
    for c in range(classes):
        b, f, r = c // 40, (c // 10) % 4, c % 10
        dev.append(f"pc{c:03d},{c + 1}班,{'ABCDEFGH'[b]}{f + 1}{r + 1:02d},{'ABCDEFGH'[b]}楼,{f + 1}楼")
    return write_csvs(folder, dev, timetable_lines(classes, lambda c: f"{c + 1}班", lambda t: f"教师{t:03d}"))


def fill_rollup(db: Database, rng: random.Random, days: list[date], now: float) -> int:
    """Every lesson of the past term days through the real attribution into the rollup."""
    model = usage.load_model(db, SCHOOL)
    use_prob = {s.teacher: rng.choice((0.9, 0.8, 0.7, 0.5, 0.3)) for s in model.slots}
    rows: list[tuple[Any, ...]] = []
    marks: list[tuple[Any, ...]] = []
    for d in days:
        _plan, lessons = lessons_on(model, d)
        for ls in lessons:
            ivs = []
            if rng.random() < use_prob[ls.teacher]:
                a = ls.start_t + rng.randint(0, 300)
                ivs = [(a, min(ls.end_t, a + rng.randint(300, 2400)))]
            u = attribute(ls, f"pc{int(ls.klass[:-1]) - 1:03d}", ivs, [ls.start_t + 60.0], [], 10.0, now)
            rows.append((SCHOOL, ls.date, ls.klass, ls.period, iso_week(d), ls.teacher, ls.subject, 0, ls.start_t,
                         ls.end_t, u.device, u.in_use_s, int(u.used), int(u.counted), u.status, None, 0, u.note))
        marks.append((SCHOOL, d.isoformat(), now, len(lessons)))
    with db.transaction():
        db.executemany(usage.INSERT, rows)
        db.executemany("INSERT INTO usage_days (school, date, dirty, computed, valid_until, faults_seen, lessons) "
                       "VALUES (?, ?, 0, ?, NULL, 0, ?)", marks)
    return len(rows)


def fill_today(db: Database, classes: int, rng: random.Random, now: float) -> int:
    """Today's raw events from 07:30 until now at agent density, and every device's live state."""
    today = datetime.fromtimestamp(now, TZ).date()
    model = usage.load_model(db, SCHOOL)
    _plan, lessons = lessons_on(model, today)
    by_class: dict[str, list[Any]] = {}
    for ls in lessons:
        by_class.setdefault(ls.klass, []).append(ls)
    day0 = datetime(today.year, today.month, today.day, 7, 30, tzinfo=TZ).timestamp()
    batch: list[tuple[Any, ...]] = []
    states: list[tuple[Any, ...]] = []
    for c in range(classes):
        dev = f"pc{c:03d}"
        kind = rng.random()
        if kind < 0.08:  # off all day, or lost
            states.append((0, "shutdown" if kind < 0.05 else "lost", 0, dev))
            continue
        sessions = [(ls.start_t + rng.randint(0, 240), min(now, ls.end_t - rng.randint(0, 360)))
                    for ls in by_class.get(f"{c + 1}班", []) if ls.start_t < now and rng.random() < 0.7]
        evs: list[tuple[float, str, str]] = [(day0, "power", '{"state":"on","clean":true}')]
        for a, b in sessions:
            sid = f"{dev}-{int(a)}"
            evs.append((a, "session", json.dumps({"state": "start", "session_id": sid})))
            if b < now - 60:
                evs.append((b, "session", json.dumps({"state": "end", "session_id": sid, "start": _ts(a),
                                                     "end": _ts(b), "active_s": int(b - a)})))
        t = day0 + 60
        while t < now:
            in_use = any(a <= t <= b for a, b in sessions)
            evs.append((t, "heartbeat", f'{{"in_use":{"true" if in_use else "false"},"idle_s":10,"cpu_pct":5.0,'
                        f'"mem_pct":40.0,"disk_pct":60.0,"uptime_s":{int(t - day0)}}}'))
            t += 60
        evs.sort()
        for seq, (t, typ, data) in enumerate(evs):
            batch.append((SCHOOL, dev, f"{dev}-{seq}", seq, typ, _ts(t), t, t, data))
        states.append((1, "startup", int(any(a <= now <= b for a, b in sessions)), dev))
    with db.transaction():
        db.executemany("INSERT INTO events (school, device, id, seq, type, ts, t, received, data, clock_fault) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", batch)
        for online, reason, in_use, dev in states:
            db.execute("UPDATE devices SET online = ?, status_reason = ?, in_use = ?, last_seen = ?, "
                       "last_heartbeat_t = ? WHERE school = ? AND device = ?",
                       (online, reason, in_use, now + 3600, now, SCHOOL, dev))  # seen "now" for the whole run
        for dev in rng.sample([f"pc{c:03d}" for c in range(classes)], 3):
            db.execute("INSERT INTO faults (school, device, code, severity, source, opened_t) "
                       "VALUES (?, ?, 'display_missing', 'warning', 'agent', ?)", (SCHOOL, dev, now - 3600))
    return len(batch)


def build(folder: Path, classes: int) -> tuple[str, str, dict[str, Any]]:
    from dashboard.users import add_user, create_token

    url = str(folder / "bench.db")
    db = connect(url)
    migrations.migrate(db)
    rng = random.Random(6)
    now = time.time()
    today = datetime.fromtimestamp(now, TZ).date()
    t0 = time.perf_counter()
    ensure_school(db, SCHOOL, "基准测试中学", "Asia/Shanghai")
    for kind, path in write_school(folder / "csv", classes).items():
        run_import(db, kind, SCHOOL, path)
    days = [TERM_START + timedelta(days=i) for i in range((today - TERM_START).days)]
    lessons = fill_rollup(db, rng, days, now)
    events = fill_today(db, classes, rng, now)
    add_user(db, "校长", "headteacher", "bench-password-1", SCHOOL, must_change=False)
    token = create_token(db, "校长")
    usage.refresh_days(db, SCHOOL, [today])  # today's lessons so far, from the raw events (as the job stores them)
    info = {"classes": classes, "term_days": len(days), "rollup_lessons": lessons, "events_today": events,
            "build_s": round(time.perf_counter() - t0, 1)}
    db.close()
    return url, token, info


SERVE = """
import sys
sys.path.insert(0, {root!r})
from waitress import serve
from dashboard import create_app
serve(create_app({{"BBT_DB": {db!r}, "SECRET_KEY": "bench"}}), host="127.0.0.1", port={port}, threads=8,
      _quiet=True)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(port: int, path: str, token: str, users: int, seconds: float, think: float = 0.0) -> dict[str, Any]:
    """``users`` threads, each on its own keep-alive connection, request ``path`` for ``seconds``,
    pausing a random 0.5-1.5 × ``think`` seconds between requests (0: back to back)."""
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    start = threading.Barrier(users)

    def user() -> None:
        rng = random.Random()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        start.wait()
        if think:  # users arrive spread over one think time, not all in the same instant
            time.sleep(rng.uniform(0, think))
        try:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
                r = conn.getresponse()
                body = r.read()
                mine.append(time.perf_counter() - t0)
                if r.status != 200 or not body:
                    with lock:
                        errors.append(f"{r.status}")
                if think:
                    time.sleep(rng.uniform(0.5, 1.5) * think)
        finally:
            conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=user) for _ in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat.sort()

    def pct(p: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1)
    return {"path": path, "requests": len(lat), "errors": len(errors), "rps": round(len(lat) / seconds, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(1000 * lat[-1], 1),
            "mean_ms": round(1000 * statistics.fmean(lat), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--think", type=float, default=1.0, help="mean seconds a user looks at a page before the next")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bbt-bench-dashboard-"))
    print(f"building a {args.classes}-classroom school with a term of data in {folder} ...", file=sys.stderr)
    url, token, info = build(folder, args.classes)
    print(f"built: {info}", file=sys.stderr)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVE.format(root=str(ROOT), db=url, port=port)], cwd=ROOT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/login")
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        today = datetime.now(TZ).date()
        week = iso_week(today - timedelta(days=7))
        endpoints = [
            ("static file (the floor)", "/static/bbt.css"),
            ("overview page", f"/?school={SCHOOL}"),
            ("overview refresh (JSON)", f"/overview.json?school={SCHOOL}"),
            ("weekly teacher table page", f"/usage/teachers?school={SCHOOL}&week={week}"),
            ("usage/teachers API (protocol.md §4)", f"/api/v1/usage/teachers?school={SCHOOL}&week={week}"),
        ]
        results: list[dict[str, Any]] = []
        saturation: list[dict[str, Any]] = []
        for name, path in endpoints:
            load(port, path, token, 2, 1.0)  # warm-up: templates compiled, caches filled
            for think, into in ((args.think, results), (0.0, saturation)):
                r = load(port, path, token, args.users, args.seconds, think)
                r["name"] = name
                into.append(r)
                print(f"{name:34s} think {think:3.1f}s p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  "
                      f"p99 {r['p99_ms']:7.1f} ms  {r['rps']:6.1f} req/s  errors {r['errors']}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(15)
    by = {r["name"]: r for r in results}
    measured = [by["overview page"], by["weekly teacher table page"]]
    out: dict[str, Any] = {"when": datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
           "python": platform.python_version(), "cpus": os.cpu_count(), "backend": "sqlite",
           "users": args.users, "seconds_per_endpoint": args.seconds, "week": week, **info,
           "think_s": args.think, "results": results, "saturation": saturation, "target_p95_ms": TARGET_P95_MS,
           "pass": all(r["p95_ms"] <= TARGET_P95_MS and not r["errors"] for r in measured),
           "load_average_at_end": os.getloadavg()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (RESULTS / "dashboard.md").write_text(markdown(out), encoding="utf-8")
    print(markdown(out))


def _table(results: list[dict[str, Any]]) -> str:
    head = ["| endpoint | path | p50 | p95 | p99 | max | req/s | errors |", "|---|---|---|---|---|---|---|---|"]
    return "\n".join(head + [f"| {x['name']} | `{x['path'].split('?')[0]}` | {x['p50_ms']} | **{x['p95_ms']}** | "
                        f"{x['p99_ms']} | {x['max_ms']} | {x['rps']} | {x['errors']} |" for x in results])


def markdown(r: dict[str, Any]) -> str:
    return f"""# Dashboard latency benchmark

`bench/dashboard.py`, {r['when']}, {r['machine']}, Python {r['python']}, {r['cpus']} CPUs
(load average at the end: {', '.join(f'{x:.1f}' for x in r['load_average_at_end'])} — other work shared the machine).

Dataset: one school, {r['classes']} classrooms (5 buildings × 4 floors × 10), 40 lessons a week per class;
{r['term_days']} days of the autumn term in the usage rollup ({r['rollup_lessons']:,} lessons through the real
attribution) and today's raw events at agent density ({r['events_today']:,} events). Built in {r['build_s']} s.

Server: the dashboard under waitress (8 threads, as `bbt server`), SQLite, its own process.
Load: {r['users']} concurrent users (threads with a keep-alive connection each, signed in as the headteacher),
each loading the page, looking at it for 0.5-1.5 × {r['think_s']:g} s, loading it again;
{r['seconds_per_endpoint']:g} s per endpoint after a warm-up; latency measured at the client, in ms.
Weekly tables are for {r['week']}.

{_table(r['results'])}

Target: p95 <= {r['target_p95_ms']:g} ms for the overview page and the weekly teacher table page, at
{r['users']} concurrent users: **{'PASS' if r['pass'] else 'FAIL'}**. The static file is the floor: what
the same server and client need for a request that does no work.

Saturation (the same {r['users']} users with no pause at all, every one requesting back to back: the
server's capacity; latency is then queueing, about users ÷ req/s):

{_table(r['saturation'])}
"""


if __name__ == "__main__":
    main()
