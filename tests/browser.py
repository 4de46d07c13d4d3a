"""Headless Debian Chromium driven by Playwright (no browser download: /usr/bin/chromium)."""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    return shutil.which("chromium") or next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                                             if os.path.exists(p)), None)


@contextmanager
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing and CI=true (apt-get install chromium)")
        pytest.skip("chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@contextmanager
def serve(app: Any, threads: int = 2, port: int = 0) -> Iterator[str]:
    """``app`` served by waitress from a thread on ``port`` (a free one by default); yields its base URL.
    On the way out the listener, the open connections and the worker threads are closed."""
    from waitress import wasyncore
    from waitress.server import create_server

    from tests.brokers import free_port

    server = create_server(app, host="127.0.0.1", port=port or free_port(), threads=threads)
    t = threading.Thread(target=server.run, name="waitress", daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        # closed from the server's own thread (a socket closed under its select() is EBADF there); with its map
        # empty, its loop ends at once
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        t.join(5)
        server.task_dispatcher.shutdown(timeout=5)


def school_and_users(db: Any) -> None:
    """The test school (tests.dash.seed_school) and a user per role."""
    from tests.dash import add_users, seed_school

    seed_school(db)
    add_users(db)


@contextmanager
def dashboard_site(folder: Path, seed: Callable[[Any], object] = school_and_users, live: bool = False, threads: int = 2,
         **config: Any) -> Iterator[tuple[str, Any]]:
    """The dashboard over a new store in ``folder``, ``seed(db)`` run on it, served (``serve``); with ``live``,
    as `bbt server` runs it: Mosquitto and the collector too. Yields (base URL, app); all stops after."""
    from tests.brokers import Mosquitto, mosquitto_binary
    from tests.dash import make_app

    with ExitStack() as stack:
        if live:
            from collector.intake.service import Collector
            from common.mqttconf import BrokerConfig

            if mosquitto_binary() is None:
                pytest.skip("mosquitto not installed")
            broker = Mosquitto(folder / "mosquitto").start()
            stack.callback(broker.stop)
            config["BROKER"] = BrokerConfig(port=broker.port)
        app = make_app(str(folder / "bbt.db"), **config)
        stack.callback(app.extensions["bbt_db"].close)
        seed(app.extensions["bbt_db"])
        if live:
            collector = Collector(str(folder / "bbt.db"), config["BROKER"], client_id="bbt-collector")
            collector.start()
            stack.callback(collector.stop)
            assert collector.connected.wait(10)
        yield stack.enter_context(serve(app, threads)), app


def page_as(b: Any, base: str, role: str, accept_dialogs: bool = False, **page: Any) -> Any:
    """A new Chinese page of browser ``b``, logged in as the test user of ``role`` (tests.dash.USERS); with
    ``accept_dialogs``, it answers yes to confirmation questions."""
    from tests.dash import PASSWORD, USERS

    new = b.new_page(locale="zh-CN", **page)
    if accept_dialogs:
        new.on("dialog", lambda d: d.accept())
    login(new, base, USERS[role][0], PASSWORD)
    return new


def login(page: Any, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
