"""Without a pinned key an agent only reports; with one, a refused policy is reported as a fault (issue 22).
Only programs the test started are ever matched by a policy here."""
from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import protocol
from agent.trust import report_only
from common import signing
from tests.agent_helpers import Sink, start_agent, stop
from tests.brokers import Mosquitto
from tests.helpers import wait_for


def fake_program(tmp: Path, name: str) -> subprocess.Popen[bytes]:
    exe = tmp / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    shutil.copy("/bin/sleep", exe)
    return subprocess.Popen([str(exe), "120"])


def command(cid: str, kind: str, args: dict | None = None) -> dict:
    now = datetime.now(UTC)
    return protocol.make_command(cid, kind, args or {}, now, now + timedelta(minutes=10))


def test_report_only_keeps_everything_but_enforcement() -> None:
    p: dict[str, Any] = {"software": {"deny": ["x*"], "action": "block"}, "shutdown_after": "18:00",
                         "idle_minutes": 7}
    assert report_only(p) == {"software": {"deny": ["x*"], "action": "report"}, "shutdown_after": None,
                              "idle_minutes": 7}
    assert report_only({"idle_minutes": 3}) == {"idle_minutes": 3}
    assert p["software"]["action"] == "block", "the input is not changed"


def test_agent_without_a_pinned_key_reports_but_never_blocks_or_shuts_down(mosquitto: Mosquitto,
                                                                          tmp_path: Path) -> None:
    sink = Sink(mosquitto.port)
    agent = start_agent(tmp_path, mosquitto.url, BBT_AGENT_SCAN_S="1")
    game = fake_program(tmp_path, "zz-unpinned-game")
    try:
        wait_for(lambda: sink.of("power", state="on"), 20, what="power on")
        sink.publish("bbt/v1/s1/policy", {"software": {"deny": ["zz-unpinned-*"], "action": "block"},
                                          "shutdown_after": "00:00"}, retain=True)
        exe = str(tmp_path / "bin" / "zz-unpinned-game")
        ev = wait_for(lambda: sink.of("software", exe=exe), 15, what="the game reported")[0]
        assert ev["data"]["action"] == "detected"
        time.sleep(1.5)
        assert game.poll() is None, "an agent without a pinned key terminated a program"
        sink.publish("bbt/v1/s1/pc-1/cmd", command("c-off", "shutdown", {"delay_s": 1}))
        sink.publish("bbt/v1/s1/pc-1/cmd", command("c-msg", "message", {"text": "hello"}))
        off = wait_for(lambda: sink.ack("c-off"), 10, what="the shutdown's ack")
        assert off["ok"] is False and "no pinned command key" in off["error"]
        assert wait_for(lambda: sink.ack("c-msg"), 10, what="the message's ack")["ok"] is True
        time.sleep(1.5)
    finally:
        game.kill()
        game.wait()
        stop(agent)
        sink.close()
    log = (tmp_path / "agent-pc-1.log").read_text(errors="replace")
    assert "power off requested" not in log


def test_a_refused_policy_is_reported_as_a_fault(mosquitto: Mosquitto, tmp_path: Path) -> None:
    pub = signing.ensure_keypair(tmp_path / "keys" / "school.key", [], [])
    key = signing.load_private(tmp_path / "keys" / "school.key")
    signing.ensure_keypair(tmp_path / "keys" / "other.key", [], [])
    other = signing.load_private(tmp_path / "keys" / "other.key")
    sink = Sink(mosquitto.port)
    agent = start_agent(tmp_path, mosquitto.url, BBT_AGENT_COMMAND_KEY=pub)
    try:
        wait_for(lambda: sink.of("power", state="on"), 20, what="power on")
        sink.publish("bbt/v1/s1/policy", signing.sign({"software": {"deny": ["*"], "action": "block"}}, other),
                     retain=True)
        raised = wait_for(lambda: sink.of("fault", code="untrusted_policy", state="raised"), 10,
                          what="the untrusted_policy fault")[0]
        assert "not the pinned key" in raised["data"]["detail"]
        sink.publish("bbt/v1/s1/policy", signing.sign({"idle_minutes": 9}, key), retain=True)
        wait_for(lambda: sink.of("fault", code="untrusted_policy", state="cleared"), 10, what="the fault cleared")
    finally:
        stop(agent)
        sink.close()
