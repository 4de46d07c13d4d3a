"""Group power actions end to end (issue 19) against a real Mosquitto and the collector: a building-wide
shutdown reaches exactly that building's online PCs and records each result; 雷雨关机 spares a PC in use
until its countdown (real agents, power-off faked at the OS boundary: BBT_AGENT_DESKTOP=none logs only);
wake-on-LAN makes a peer agent send the magic packet, captured on a local UDP socket."""
from __future__ import annotations

import json
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

import protocol
from collector.db import Database, connect
from collector.devices import commands, school_keys
from collector.devices.mqttout import client_sender
from collector.intake.service import Collector
from collector.migrations import migrate
from collector.operations import power, wake
from common.mqttconf import parse_broker_url
from tests.agent_helpers import Sink, start_agent, stop
from tests.brokers import Mosquitto
from tests.helpers import close, run_bbt, wait_for

S = "s1"


def add_devices(db: Database, rows: list[tuple[str, str, str]]) -> None:
    for dev, building, floor in rows:
        db.execute("INSERT INTO devices (school, device, class, room, building, floor) VALUES (?, ?, ?, ?, ?, ?)",
                   (S, dev, f"班{dev}", f"R{dev}", building, floor))


class FakePC:
    """Says it is online (retained status) and answers commands: ok, or refuses."""

    def __init__(self, port: int, device: str, refuse: str | None = None) -> None:
        self.device, self.refuse = device, refuse
        self.cmds: list[dict[str, Any]] = []
        subscribed = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe(protocol.cmd_topic(S, device), 1)
        assert subscribed.wait(5)
        status = protocol.make_status(True, "startup", datetime.now().astimezone(), "b1", "0.1.0")
        self.c.publish(protocol.status_topic(S, device), protocol.dumps(status), qos=1, retain=True).wait_for_publish(5)

    def _on_message(self, client: Any, userdata: Any, m: Any) -> None:
        cmd = protocol.decode_command(m.payload)
        self.cmds.append(cmd)
        ack: dict[str, Any] = {"id": cmd["id"], "ok": self.refuse is None}
        if self.refuse:
            ack["error"] = self.refuse
        client.publish(protocol.ack_topic(S, self.device), json.dumps(ack), qos=1)

    def close(self) -> None:
        close(self.c)


def online(db: Database, devices: list[str]) -> bool:
    rows = {d["device"]: d["online"] for d in power.scope_devices(db, S)}
    return all(rows.get(d) for d in devices)


def test_building_shutdown_reaches_exactly_its_online_pcs(mosquitto: Mosquitto, db_path: str) -> None:
    db = connect(db_path)
    migrate(db)
    add_devices(db, [("pc-a1", "A楼", "1楼"), ("pc-a2", "A楼", "1楼"), ("pc-a3", "A楼", "2楼"),
                     ("pc-a4", "A楼", "2楼"), ("pc-b1", "B楼", "1楼")])
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-power")
    col.start()
    pcs = [FakePC(mosquitto.port, "pc-a1"), FakePC(mosquitto.port, "pc-a2", refuse="signature: unsigned"),
           FakePC(mosquitto.port, "pc-a3"), FakePC(mosquitto.port, "pc-b1")]  # pc-a4 is off
    try:
        wait_for(col.connected.is_set, what="collector connected")
        wait_for(lambda: online(db, ["pc-a1", "pc-a2", "pc-a3", "pc-b1"]), what="the PCs online")
        action_id, created = power.create_group(db, S, "shutdown", {"delay_s": 30, "text": "下课关机"}, "电工张",
                                                building="A楼")
        assert sorted(c["device"] for c in created) == ["pc-a1", "pc-a2", "pc-a3"]
        commands.send_created(db, client_sender(col.client), created)
        res = wait_for(lambda: (r := power.results(db, action_id)) and r["done"] and r, what="every result")
        assert res["tally"] == {"acked": 2, "refused": 1, "offline": 1} and res["total"] == 4
        by = {t["device"]: t for t in res["targets"]}
        assert by["pc-a2"]["result"] == "refused" and by["pc-a2"]["error"] == "signature: unsigned"
        assert by["pc-a4"]["result"] == "offline" and "pc-b1" not in by
        assert not pcs[3].cmds, "another building's PC got nothing"
        got = pcs[0].cmds[0]
        assert got["kind"] == "shutdown" and got["args"] == {"delay_s": 30, "text": "下课关机"}
        assert got["_expires"].timestamp() - got["_issued"].timestamp() == power.GROUP_EXPIRES_S
        # a floor: only A楼 2楼's online PC
        floor_id, created = power.create_group(db, S, "message", {"text": "请关闭投影仪"}, "电工张", "A楼", "2楼")
        assert [c["device"] for c in created] == ["pc-a3"]
        assert power.results(db, floor_id)["tally"] == {"waiting": 1, "offline": 1}  # type: ignore[index]
        # the same from the command line: B楼 only; a floor without its building is a clear error
        r = run_bbt("power", "shutdown", "--school", S, "--building", "B楼", "--wait", "10", "--db", db_path,
                    "--broker", mosquitto.url)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[1:] == ["pc-b1\tacked\t"] and "acked=1 total=1" in r.stderr
        assert len(pcs[3].cmds) == 1 and len(pcs[0].cmds) == 1  # A楼 got nothing more
        r = run_bbt("power", "storm", "--school", S, "--floor", "1楼", "--db", db_path, "--broker", mosquitto.url)
        assert r.returncode != 0 and "building" in r.stderr and "Traceback" not in r.stderr
    finally:
        for p in pcs:
            p.close()
        col.stop()
        db.close()


def test_storm_spares_a_pc_in_use_until_its_countdown_and_wol_from_a_peer(mosquitto: Mosquitto, db_path: str,
                                                                          tmp_path: Path) -> None:
    db = connect(db_path)
    migrate(db)
    add_devices(db, [("pc-busy", "A楼", "1楼"), ("pc-idle", "A楼", "1楼"), ("pc-off1", "A楼", "2楼"),
                     ("pc-off2", "A楼", "2楼"), ("pc-off3", "A楼", "2楼")])
    key = school_keys.public_key(db, S)  # pinned at enrolment in real life
    (tmp_path / "busy-idle").write_text("1")
    (tmp_path / "idle-idle").write_text("100000")
    sink = Sink(mosquitto.port)
    col = Collector(db_path, parse_broker_url(mosquitto.url), client_id="col-storm")
    col.start()
    agents = {d: start_agent(tmp_path, mosquitto.url, device=d, BBT_AGENT_COMMAND_KEY=key,
                             BBT_AGENT_IDLE_FILE=str(tmp_path / f"{d[3:]}-idle")) for d in ("pc-busy", "pc-idle")}
    log = {d: tmp_path / f"agent-{d}.log" for d in agents}
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(10)
        wait_for(lambda: online(db, list(agents)), 30, what="both agents online")
        wait_for(lambda: sink.of("session", state="start"), 15, what="pc-busy in use")  # (pc-idle never is)
        # the inventory carries the network (wake-on-LAN needs it): this machine's real address and MAC
        net = wait_for(lambda: db.query("SELECT net_ip, net_mac FROM devices WHERE device = 'pc-busy' "
                                        "AND net_ip IS NOT NULL"), 15, what="inventory's network stored")[0]
        assert net["net_ip"].count(".") == 3

        args = {"delay_s": 1, "in_use_delay_s": 8, "text": power.STORM_TEXT}
        action_id, created = power.create_group(db, S, "shutdown", args, "电工张", "A楼", "1楼", action="storm")
        t0 = time.monotonic()
        commands.send_created(db, client_sender(col.client), created)
        wait_for(lambda: "power off requested" in log["pc-idle"].read_text(errors="replace"), 8,
                 what="the idle PC switched off")
        assert "power off requested" not in log["pc-busy"].read_text(errors="replace")
        time.sleep(max(0.0, 6 - (time.monotonic() - t0)))
        busy = log["pc-busy"].read_text(errors="replace")
        assert "power off requested" not in busy, "the PC in use is spared during its countdown"
        assert power.STORM_TEXT in busy and "本机将在 8 秒后关机" in busy
        wait_for(lambda: "power off requested" in log["pc-busy"].read_text(errors="replace"), 12,
                 what="the PC in use switched off after its countdown")
        assert time.monotonic() - t0 >= 8
        res = wait_for(lambda: (r := power.results(db, action_id)) and r["done"] and r, what="acks recorded")
        assert res["tally"] == {"acked": 2}
        assert {t["device"]: t["result"] for t in res["targets"]} == {"pc-busy": "acked", "pc-idle": "acked"}

        # wake-on-LAN: pc-busy is the only online PC in 10.77.1.0/24; pc-off2's subnet has none; pc-off3 no MAC
        for dev, ip, mac in (("pc-busy", "10.77.1.20", "52:54:00:00:00:01"), ("pc-idle", "10.99.0.2", None),
                             ("pc-off1", "10.77.1.31", "52:54:00:12:34:56"),
                             ("pc-off2", "10.88.0.5", "52:54:00:ab:cd:ef"), ("pc-off3", "10.77.1.40", None)):
            db.execute("UPDATE devices SET net_ip = ?, net_mask = '255.255.255.0', net_mac = ? WHERE device = ?",
                       (ip, mac, dev))
        port = udp.getsockname()[1]
        wake_id, created = wake.create_wake(db, S, "电工张", "A楼", address="127.0.0.1", port=port)
        assert [(c["device"], c["command"]["args"]["macs"]) for c in created] == [("pc-busy", ["52:54:00:12:34:56"])]
        commands.send_created(db, client_sender(col.client), created)
        packet, sender = udp.recvfrom(1024)
        assert packet == b"\xff" * 6 + bytes.fromhex("525400123456") * 16 and len(packet) == 102
        res = wait_for(lambda: (r := wake_results(db, wake_id)).get("pc-off1") == "packet_sent" and r, what="sent")
        assert res == {"pc-off1": "packet_sent", "pc-off2": "no_peer", "pc-off3": "no_address",
                       "pc-busy": "already_on", "pc-idle": "already_on"}
        sink.publish(protocol.status_topic(S, "pc-off1"), protocol.make_status(
            True, "startup", datetime.now().astimezone(), "b2", "0.1.0"), retain=True)  # the woken PC reports in
        wait_for(lambda: wake_results(db, wake_id)["pc-off1"] == "online", what="the woken PC online")
    finally:
        udp.close()
        for p in agents.values():
            stop(p)
        sink.close()
        col.stop()
        db.close()
    for d in agents:  # stopped cleanly despite the (faked) power-off
        assert agents[d].returncode == 0, log[d].read_text(errors="replace")[-2000:]


def wake_results(db: Database, action_id: str) -> dict[str, str]:
    res = power.results(db, action_id)
    assert res is not None
    return {t["device"]: t["result"] for t in res["targets"]}
