"""Small helpers shared by tests: waiting, publishing, running bbt as a process."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any, Callable

import paho.mqtt.client as mqtt

from common.mqttconf import release_sockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait_for(pred: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def publisher(port: int, client_id: str = "test-pub", **kw: Any) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, **kw)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()
    release_sockets(client)


def bbt_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bbt", *args]


def run_bbt(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(bbt_cmd(*args), input=input, capture_output=True, text=True, env=full_env,
                          timeout=timeout, cwd=ROOT)
