"""The agent as a real process against a real Mosquitto, with real psutil on this machine."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from agent.outbox import Outbox
from common import signing
from tests.agent_helpers import Sink, start_agent, stop
from tests.brokers import Mosquitto
from tests.helpers import wait_for

NOBODY = 65534  # the person logged in at the PC, in these tests


def fake_program(tmp: Path, name: str, uid: int | None = None) -> subprocess.Popen[bytes]:
    """A process named like a program: a copy of sleep(1) under that name (run as ``uid``: the folder
    must then be readable by everyone)."""
    exe = tmp / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    shutil.copy("/bin/sleep", exe)
    if uid is None:
        return subprocess.Popen([str(exe), "120"])
    os.chmod(exe.parent, 0o755)
    return subprocess.Popen([str(exe), "120"], user=uid, cwd="/")


def logged_in(data_dir: Path, uid: int) -> None:
    """The user-session helper of ``uid`` is running: its file (owned by that user) is fresh."""
    folder = data_dir / "session"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "session.json").write_text(json.dumps({"ts": time.time(), "idle_s": 1.0, "foreground": None}))
    os.chown(folder / "session.json", uid, uid)


def command(cid: str, kind: str, args: dict | None = None, expires_in: float = 600) -> dict:
    now = datetime.now(UTC).astimezone()
    return {"id": cid, "kind": kind, "args": args or {}, "issued": now.isoformat(timespec="seconds"),
            "expires": (now + timedelta(seconds=expires_in)).isoformat(timespec="seconds")}


def test_denied_program_policy_live_and_commands(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # an agent blocks and shuts down only on what its pinned key signed (without one it only reports)
    pub = signing.ensure_keypair(tmp_path / "keys" / "school.key", [], [])
    key = signing.load_private(tmp_path / "keys" / "school.key")
    sink = Sink(mosquitto.port)
    agent = start_agent(tmp_path, mosquitto.url, BBT_AGENT_COMMAND_KEY=pub)  # software scan at its default period
    procs = []
    victims: Path | None = None
    try:
        wait_for(lambda: sink.of("power", state="on"), 20, what="power on")
        # 1. the built-in deny list: a program called minecraft is reported within 15 s
        t0 = time.monotonic()
        procs.append(fake_program(tmp_path, "minecraft"))
        mine = str(tmp_path / "bin" / "minecraft")  # other tests on this machine may run one too
        ev = wait_for(lambda: sink.of("software", exe=mine), 15, what="minecraft reported")[0]
        assert time.monotonic() - t0 < 15
        assert ev["data"]["action"] == "detected" and ev["data"]["rule"] == "minecraft*"
        assert ev["data"]["name"] == "minecraft"

        # 2. a policy on the retained topic applies without a restart: deny foo-*, block it; heartbeat 5 s.
        # Only the logged-in person's programs are ended: foo-game runs as that user (nobody), foo-service
        # as root (like a service); both are denied, only foo-game ends
        victims = Path(tempfile.mkdtemp(prefix="bbt-live-"))  # readable by nobody (tmp_path is not)
        os.chmod(victims, 0o755)
        logged_in(tmp_path / "agent-pc-1", NOBODY)
        game = fake_program(victims, "foo-game", NOBODY)
        service = fake_program(victims, "foo-service")
        procs += [game, service]
        time.sleep(0.3)  # the game runs before the policy comes
        beats_before = len(sink.of("heartbeat"))
        sink.publish("bbt/v1/s1/policy", signing.sign({"software": {"deny": ["FOO-*"], "action": "block"},
                                                       "heartbeat_s": 5}, key), retain=True)
        foo = str(victims / "bin" / "foo-game")
        blocked = wait_for(lambda: sink.of("software", exe=foo), 8, what="foo-game blocked")[0]
        assert blocked["data"]["action"] == "blocked" and blocked["data"]["rule"] == "FOO-*", sink.events
        assert game.wait(5) == -signal.SIGTERM
        kept = wait_for(lambda: sink.of("software", exe=str(victims / "bin" / "foo-service")), 8,
                        what="foo-service reported")[0]
        assert kept["data"]["action"] == "detected" and kept["data"]["rule"] == "FOO-*"
        assert kept["data"]["block_refused"] == "it runs as the system or a service"
        assert service.poll() is None
        wait_for(lambda: len(sink.of("heartbeat")) >= beats_before + 1, 8, what="heartbeat at the policy's 5 s")
        # minecraft is no longer denied by the new policy and was reported once only
        assert len(sink.of("software", exe=mine)) == 1

        # 3. commands: message, shutdown then cancel, an expired one, a redelivered id
        sink.publish("bbt/v1/s1/pc-1/cmd", signing.sign(command("c-msg", "message", {"text": "请关闭投影仪"}), key))
        sink.publish("bbt/v1/s1/pc-1/cmd", signing.sign(command("c-off", "shutdown", {"delay_s": 600}), key))
        sink.publish("bbt/v1/s1/pc-1/cmd", signing.sign(command("c-cancel", "cancel_shutdown"), key))
        sink.publish("bbt/v1/s1/pc-1/cmd", signing.sign(command("c-old", "message", {"text": "x"}, expires_in=-1) |
                                                        {"issued": "2020-01-01T08:00:00+08:00"}, key))
        sink.publish("bbt/v1/s1/pc-1/cmd", {"id": "c-bad", "kind": "reboot"})
        for cid in ("c-msg", "c-off", "c-cancel"):
            assert wait_for(partial(sink.ack, cid), 5, what="ack " + cid)["ok"] is True
        assert wait_for(lambda: sink.ack("c-old"), 5, what="ack c-old") == {"id": "c-old", "ok": False,
                                                                            "error": "expired"}
        bad = wait_for(lambda: sink.ack("c-bad"), 5, what="ack c-bad")
        assert bad["ok"] is False and "reboot" in bad["error"]
        n_acks = len(sink.acks)
        sink.publish("bbt/v1/s1/pc-1/cmd", signing.sign(command("c-msg", "message", {"text": "again"}), key))
        wait_for(lambda: len(sink.acks) > n_acks, 5, what="ack of the redelivered id")
        assert sink.acks[-1] == {"id": "c-msg", "ok": True}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        stop(agent)
        sink.close()
        if victims is not None:
            shutil.rmtree(victims)
    log = (tmp_path / "agent-pc-1.log").read_text()
    assert agent.returncode == 0, log
    assert "请关闭投影仪" in log and "power off requested" not in log
    assert sink.of("power", state="off")


def test_offline_backlog_survives_sigkill_and_arrives_once_in_order(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")  # not started yet: the school's network is down
    agent = start_agent(tmp_path, broker.url, device="pc-2")
    db = tmp_path / "agent-pc-2" / "outbox.db"
    sink = None
    try:
        wait_for(lambda: db.exists(), 15, what="the agent's outbox")
        ob = Outbox(str(db))
        wait_for(lambda: ob.get_meta("running") == "1", 15, what="agent running")
        ids = [ob.add("software", {"action": "detected", "name": f"t-{i}", "exe": "", "rule": "t"})["id"]
               for i in range(1000)]
        ob.close()
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        broker.start()
        sink = Sink(broker.port)
        agent = start_agent(tmp_path, broker.url, device="pc-2")
        wait_for(lambda: len({e["id"] for e in sink.of("software", rule="t")}) >= 1000, 30, what="1,000 events")
        wait_for(lambda: sink.of("fault", code="unclean_shutdown"), 10, what="unclean_shutdown fault")
    finally:
        stop(agent)
        if sink is not None:
            sink.close()
        broker.stop()
    # (the agent's own scan may report a real program running on this machine: only ours count)
    got = [e for e in sink.events if e["type"] == "software" and e["data"]["name"].startswith("t-")]
    seen: dict[str, int] = {}
    for i, e in enumerate(sink.events):
        assert e["id"] not in seen, f"event seq {e['seq']} arrived twice (#{seen[e['id']]} and #{i})"
        seen[e["id"]] = i
    assert sorted(e["id"] for e in got) == sorted(ids)  # all 1,000, each exactly once
    seqs = [e["seq"] for e in sink.events]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))  # oldest first, no repeats
    assert [e["data"]["clean"] for e in sink.of("power", state="on")] == [True, False]  # first run, after the kill
