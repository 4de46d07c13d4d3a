"""`bbt demo` from the command line, looked at in headless Chromium."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.brokers import free_port
from tests.browser import browser, login
from tests.helpers import ROOT, bbt_cmd, wait_for

pytestmark = pytest.mark.browser


def test_demo_shows_devices_in_browser(tmp_path: Path) -> None:
    http = free_port()
    out = tmp_path / "demo.out"
    with out.open("wb") as f:
        proc = subprocess.Popen(bbt_cmd("demo", "--duration", "90", "--speed", "600", "--http", f"127.0.0.1:{http}",
                                        "--mqtt-port", str(free_port()), "--data-dir", str(tmp_path / "demo")),
                                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    try:
        text = wait_for(lambda: "admin /" in (t := out.read_text()) and t, 60, what="demo login line")
        password = re.search(r"admin / (\S+)", text).group(1)  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{http}/" in text
        with browser() as b:
            page = b.new_page(viewport={"width": 390, "height": 844})  # a phone
            login(page, f"http://127.0.0.1:{http}", "admin", password)
            page.wait_for_selector("li.device")
            assert page.locator("li.device").count() >= 30
            assert "A楼" in page.inner_text("#floors") and "3楼" in page.inner_text("#floors")
            page.wait_for_selector("li.device.in_use, li.device.idle", timeout=45000)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10000
            artifacts = Path(ROOT) / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            (artifacts / "demo-overview.png").write_bytes(shot.read_bytes())
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, out.read_text()[-3000:]
