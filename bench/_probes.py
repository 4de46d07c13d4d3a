"""Load probes for bench/server_ingest.py: dashboard users and a PC reporting faults, timed.

(A leading underscore: a helper, not a benchmark of its own for bench/run_all.py.)
"""
from __future__ import annotations

import http.client
import random
import sqlite3
import subprocess
import threading
import time
from typing import Any


class Probe:
    """``users`` signed-in users, each on its own connection, requesting the endpoints in turn with a
    random think time; every request's (start, seconds, path, status) is kept."""

    def __init__(self, port: int, token: str, paths: list[str], users: int, think: float) -> None:
        self.port, self.token, self.paths, self.think = port, token, paths, think
        self.samples: list[tuple[float, float, str, int]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._user, args=(i,), daemon=True) for i in range(users)]
        for t in self._threads:
            t.start()

    def _user(self, i: int) -> None:
        rng = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        k = i
        while not self._stop.is_set():
            path = self.paths[k % len(self.paths)]
            k += 1
            t0, w0 = time.perf_counter(), time.time()
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
                r = conn.getresponse()
                r.read()
                status = r.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status = 0
            self.samples.append((w0, time.perf_counter() - t0, path, status))
            self._stop.wait(rng.uniform(0.5, 1.5) * self.think)
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(70)

    def window(self, a: float, b: float) -> dict[str, Any]:
        picked = [s for s in self.samples if a <= s[0] < b]
        lat = sorted(s[1] for s in picked)
        if not lat:
            return {"requests": 0}

        def pct(p: float) -> float:
            return round(1000 * lat[min(len(lat) - 1, int(p * len(lat)))], 1)
        return {"requests": len(lat), "errors": sum(1 for s in picked if s[3] != 200), "p50_ms": pct(0.5),
                "p95_ms": pct(0.95), "max_ms": round(1000 * lat[-1], 1)}


class AlertProbe:
    """Every ``every`` seconds a PC reports a fault (its own code, now); latency = until the alert engine's
    row for that code is in the store (fired; no notification channel is configured), polled every 0.1 s."""

    def __init__(self, port: int, db: str, device: str, every: float = 1.5) -> None:
        self.port, self.db, self.device, self.every = port, db, device, every
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._until = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _publish(self, i: int) -> None:
        from datetime import UTC, datetime

        import protocol

        code = f"bench_{i:04d}"
        ev = protocol.make_event(f"alert-probe-{i}", 900_000 + i, "fault", datetime.now(UTC),
                                 {"code": code, "severity": "warning", "state": "raised", "detail": ""})
        self.sent[code] = time.time()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(self.port), "-q", "1", "-t",
                        protocol.events_topic("bench", self.device), "-m", protocol.dumps(ev).decode()],
                       check=False, timeout=30)

    def _poll(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT code FROM alerts WHERE code LIKE 'bench_%'").fetchall()
        except sqlite3.OperationalError:
            rows = []
        finally:
            conn.close()
        now = time.time()
        for (code,) in rows:
            self.seen.setdefault(code, now)

    def _run(self) -> None:
        i, next_at = 0, time.time() + self.every
        while not self._stop.is_set() or (len(self.seen) < len(self.sent) and time.time() < self._until):
            if not self._stop.is_set() and time.time() >= next_at:
                self._publish(i)
                i, next_at = i + 1, next_at + self.every
            self._poll()
            time.sleep(0.1)

    def stop(self, grace: float = 20.0) -> None:
        self._until = time.time() + grace
        self._stop.set()
        self._thread.join(grace + 40)

    def window(self, a: float, b: float) -> dict[str, Any]:
        lat = sorted(self.seen.get(c, float("inf")) - t for c, t in self.sent.items() if a <= t < b)
        if not lat:
            return {"faults": 0}
        done = [x for x in lat if x != float("inf")]
        return {"faults": len(lat), "fired": len(done), "p50_s": round(done[len(done) // 2], 2) if done else None,
                "max_s": round(done[-1], 2) if done else None}


def probe_path(probe: Probe, path: str, a: float, b: float) -> float | None:
    lat = sorted(s[1] for s in probe.samples if a <= s[0] < b and s[2] == path)
    return round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None
