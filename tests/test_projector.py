"""Projectors and panels over PJLink: the agent polls a small PJLink server written here, the collector
keeps the latest state, the dashboard shows the lamp hours and the alert engine raises 投影机未关闭."""
from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import protocol
from agent.probes import pjlink
from alerts import rules
from alerts.rules import Device
from collector.devices import policy
from collector.operations.maintenance import Maintenance
from collector.school.imports import import_devices
from tests.agent_helpers import start_agent, stop
from tests.alert_rig import TZ, ManualClock, Rig, local_ts, school_config
from tests.brokers import Mosquitto
from tests.dash import add_users, login, make_app
from tests.helpers import wait_for
from tests.pjlink_fake import FakeProjector
from tests.webhook import WebhookReceiver


def test_query_with_the_password_reads_power_input_lamp_and_errors() -> None:
    with FakeProjector(password="JBMIAProjectorLink", lamp_hours=2875, erst="020100") as fake:
        state = pjlink.query(fake.address, "JBMIAProjectorLink")
        assert state == {"address": fake.address, "reachable": True, "power": "on", "input": "DIGITAL 1",
                         "lamp_hours": 2875, "errors": {"lamp": "error", "cover": "warning"}}
        # the digest (MD5 of random + password, the spec's example) went in front of the first command only
        assert fake.received[0] == "5d8409bc1c3fa39749434aa3a5c38682%1POWR ?"
        assert fake.received[1:] == ["%1INPT ?", "%1LAMP ?", "%1ERST ?"]


def test_a_wrong_or_missing_password_and_an_unreachable_projector_say_why() -> None:
    with FakeProjector(password="right") as fake:
        wrong = pjlink.query(fake.address, "wrong")
        assert wrong["reachable"] is True and "password" in wrong["error"] and "power" not in wrong
        missing = pjlink.query(fake.address, "")
        assert missing["reachable"] is False and "projector_password" in missing["error"]
        port = fake.port
    gone = pjlink.query(f"127.0.0.1:{port}", "", timeout=1)
    assert gone["reachable"] is False and gone["error"]


def test_power_off_and_a_projector_that_is_off() -> None:
    with FakeProjector(power="1") as fake:
        pjlink.power_off(fake.address)
        assert fake.received[-1] == "%1POWR 0" and fake.state["POWR"] == "0"
        assert pjlink.query(fake.address)["power"] == "off"


@pytest.mark.parametrize("text, expected", [("10.1.3.21", ("10.1.3.21", 4352)), ("pj-302:4353", ("pj-302", 4353)),
                                            ("[fe80::1]:4352", ("fe80::1", 4352))])
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert pjlink.parse_address(text) == expected


def test_the_projector_event_is_a_versioned_addition() -> None:
    assert protocol.MINOR >= 1 and "projector" in protocol.EVENT_TYPES
    ev = protocol.make_event("e1", 0, "projector", datetime.now(TZ), {"address": "10.1.3.21", "reachable": True,
                                                                     "power": "on", "lamp_hours": 12})
    protocol.validate_event(ev)
    with pytest.raises(protocol.Rejected, match="power"):
        protocol.validate_event(dict(ev, data={"address": "x", "reachable": True, "power": "maybe"}))


def test_a_collector_of_protocol_1_0_quarantines_the_projector_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a collector from before v1.1 does with it: quarantined as unknown_type, the rest stored."""
    from collector.devices.ingest import Incoming, prepare

    ev = protocol.make_event("e1", 0, "projector", datetime.now(TZ), {"address": "a", "reachable": True})
    msg = Incoming(protocol.events_topic("s1", "pc-1"), protocol.dumps(ev), time.time())
    assert prepare(msg).kind == "events"
    monkeypatch.delitem(protocol.v1._SPECS, "projector")
    old = prepare(msg)
    assert (old.kind, old.code) == ("rejected", "unknown_type")
    hb = protocol.make_event("e2", 1, "heartbeat", datetime.now(TZ), {"in_use": False})
    assert prepare(Incoming(msg.topic, protocol.dumps(hb), time.time())).kind == "events"


def test_rules_left_on_at_night_after_school_and_lamp_hours() -> None:
    devs = {"pc-1": Device("s1", "pc-1", "七年级1班")}
    night = datetime(2026, 11, 23, 23, 0, tzinfo=TZ)
    st = [{"device": "pc-1", "power": "on", "t": night.timestamp() - 60, "address": "a", "lamp_hours": 3100}]
    opts = {"after_min": 30, "fresh_min": 90}
    (c,) = rules.projector_left_on(devs, st, {}, night, opts)
    assert (c.kind, c.subject) == ("projector_left_on", "夜间投影机未关闭")
    day = datetime(2026, 11, 23, 16, 0, tzinfo=TZ)
    end = {"七年级1班": datetime(2026, 11, 23, 15, 20, tzinfo=TZ).timestamp()}
    st_day = [dict(st[0], t=day.timestamp())]
    assert rules.projector_left_on(devs, st_day, end, day, opts)[0].subject == "最后一节课后 40 分钟投影机未关闭"
    assert rules.projector_left_on(devs, [dict(st[0], power="off")], {}, night, opts) == []
    assert rules.projector_left_on(devs, [dict(st[0], t=night.timestamp() - 7200)], {}, night, opts) == []  # stale
    (lamp,) = rules.projector_lamp(devs, st, {"hours": 3000}, night.timestamp())
    assert lamp.subject == "投影机灯泡已使用 3100 小时（超过 3000 小时，请准备更换）"
    assert rules.projector_lamp(devs, st, {"hours": 5000}, night.timestamp()) == []


def test_import_column_reaches_the_policy_and_a_bad_address_is_refused(tmp_path: Path) -> None:
    from collector import migrations
    from collector.db import connect
    from collector.school.import_errors import ImportError_

    db = connect(str(tmp_path / "bbt.db"))
    migrations.migrate(db)
    f = tmp_path / "devices.csv"
    f.write_text("设备,班级,投影机\npc-1,七年级1班,10.1.3.21\npc-2,七年级2班,\n", encoding="utf-8")
    import_devices(db, "s1", f)
    assert policy.with_projectors(db, "s1", {"idle_minutes": 5}) == {"idle_minutes": 5,
                                                                       "projectors": {"pc-1": "10.1.3.21"}}
    assert policy.get_policy(db, "s1")["version"] == 1  # republished for the agents
    f.write_text("设备,班级,投影机\npc-1,七年级1班,http://bad address\n", encoding="utf-8")
    with pytest.raises(ImportError_, match="投影机"):
        import_devices(db, "s1", f)
    assert policy.with_projectors(db, "s1", {})["projectors"] == {"pc-1": "10.1.3.21"}  # nothing applied
    db.close()


def test_lamp_hours_reach_the_dashboard_and_the_left_on_alert_fires(mosquitto: Mosquitto, tmp_path: Path) -> None:
    night = local_ts(2026, 11, 23, 23, 0)
    with FakeProjector(password="pjpass", lamp_hours=3210) as fake, WebhookReceiver() as receiver:
        rig = Rig(tmp_path, mosquitto.port, receiver, clock=ManualClock(night))
        cfg = school_config(receiver, group_wait_s=0)
        cfg["rules"]["projector_left_on"] = {"fresh_min": 3 * 1440}  # the engine's clock is not the agent's
        rig.configure(cfg)
        f = tmp_path / "devices.csv"
        f.write_text(f"device,class,projector\npc-7,七年级1班,{fake.address}\n", encoding="utf-8")
        import_devices(rig.db, "s1", f)
        rig.start()
        agent = start_agent(tmp_path, mosquitto.url, device="pc-7", BBT_AGENT_PROJECTOR_PASSWORD="pjpass",
                            BBT_AGENT_PROJECTOR_S="0.5")
        try:
            Maintenance(rig.collector).run_once()  # publishes the policy with pc-7's projector address
            state = wait_for(lambda: rig.db.query("SELECT * FROM projector_state WHERE device = 'pc-7'"), 30,
                             what="the projector's state in the store")[0]
            assert (state["address"], state["power"], state["lamp_hours"]) == (fake.address, "on", 3210)
            alert = wait_for(lambda: rig.db.query("SELECT * FROM alerts WHERE kind = 'projector_left_on'"), 20,
                             what="the left-on alert")[0]
            assert alert["subject"] == "夜间投影机未关闭" and alert["device"] == "pc-7"
            lamp = wait_for(lambda: rig.db.query("SELECT * FROM alerts WHERE kind = 'projector_lamp'"), 10,
                            what="the lamp-hours alert")[0]
            assert "3210 小时" in lamp["subject"]
            _dashboard_shows(str(tmp_path / "bbt.db"), fake.address)
        finally:
            stop(agent)
            rig.stop()


def _dashboard_shows(db_url: str, address: str) -> None:
    from collector.db import connect

    db = connect(db_url)
    tokens = add_users(db)
    db.close()
    app = make_app(db_url)
    client = app.test_client()
    api = client.get("/api/v1/projectors?school=s1", headers={"Authorization": f"Bearer {tokens['maintainer']}"})
    assert api.status_code == 200
    (row,) = api.get_json()
    assert (row["device"], row["lamp_hours"], row["power"], row["address"]) == ("pc-7", 3210, "on", address)
    login(client, "电工张")
    page = client.get("/devices/s1/pc-7").get_data(as_text=True)
    assert 'id="projector"' in page and '<dd class="pj-lamp">3210</dd>' in page
    assert '<dd class="pj-power">开</dd>' in page




def _agent(tmp_path: Path, key: Any, **cfg: Any) -> Any:
    from agent.config import load_config
    from agent.desktop import LogDesktop
    from agent.runner import Agent
    from common.signing import public_b64

    values = {"school": "s1", "device": "pc-1", "data_dir": str(tmp_path), "shutdown_warn_s": 0.2,
              "command_key": public_b64(key) if key is not None else None, **cfg}
    desk = LogDesktop()
    return Agent(load_config(None, values, environ={}), probes=[], desktop=desk), desk


def test_the_end_of_day_shutdown_switches_the_projector_off_first_when_the_policy_says_so(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from common.signing import sign

    key = Ed25519PrivateKey.generate()
    with FakeProjector(password="pw") as fake:
        a, desk = _agent(tmp_path / "a", key, projector_password="pw")
        a.ctx.set_policy(sign({"shutdown_after": "00:00", "projectors": {"pc-1": fake.address},
                               "projector_off_with_pc": True}, key))
        a._end_of_day()
        assert a.commands.pending is not None
        a.commands.pending.timer.join(5)
        assert desk.powered_off == 1 and fake.state["POWR"] == "0"
        assert fake.received[-1].endswith("%1POWR 0")
        a.outbox.close()

        fake.set(POWR="1")  # without the key: the projector stays on
        b, desk_b = _agent(tmp_path / "b", key, projector_password="pw")
        b.ctx.set_policy(sign({"shutdown_after": "00:00", "projectors": {"pc-1": fake.address}}, key))
        b._end_of_day()
        assert b.commands.pending is not None
        b.commands.pending.timer.join(5)
        assert desk_b.powered_off == 1 and fake.state["POWR"] == "1"
        b.outbox.close()

    from agent.trust import report_only

    assert "projector_off_with_pc" not in report_only({"projector_off_with_pc": True})  # unsigned: never


def test_projector_state_keeps_the_newest_report(db: Any) -> None:
    from collector.devices.projectors import projector_state
    from tests.dash import publish, seed_school

    seed_school(db)
    t = datetime.now(TZ).replace(microsecond=0)
    publish(db, "pc-101", [("projector", t, {"address": "10.1.3.21", "reachable": True, "power": "on",
                                             "lamp_hours": 100, "errors": {"lamp": "warning"}})])
    publish(db, "pc-101", [("projector", t - timedelta(hours=1), {"address": "10.1.3.21", "reachable": True,
                                                                  "power": "off", "lamp_hours": 99})], first_seq=1)
    st = projector_state(db, "s1", "pc-101")
    assert st is not None and (st["power"], st["lamp_hours"], st["errors"]) == ("on", 100, {"lamp": "warning"})
    publish(db, "pc-101", [("projector", t + timedelta(minutes=5), {"address": "10.1.3.21", "reachable": False,
                                                                    "error": "timed out"})], first_seq=2)
    st = projector_state(db, "s1", "pc-101")
    assert st is not None and (st["reachable"], st["error"], st["lamp_hours"]) == (False, "timed out", 100)
    assert projector_state(db, "s1", "pc-102") is None


def test_an_offer_is_stored_signed_and_published_with_the_policy(db: Any, tmp_path: Path) -> None:
    import zipfile

    from collector.devices import agent_updates, school_keys
    from collector.devices.agent_updates import UpdateError
    from common.signing import verify

    wheel = tmp_path / "bbt-0.2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("bbt-0.2.0.dist-info/WHEEL", "Root-Is-Purelib: true\n")
    o = agent_updates.offer(db, tmp_path / "data", "s1", wheel, 25)
    assert (o["version"], o["percent"], o["url"]) == ("0.2.0", 25, "/agent-updates/s1/bbt-0.2.0-py3-none-any.whl")
    assert (tmp_path / "data" / "agent-updates" / "s1" / wheel.name).is_file()
    key = school_keys.private_key(db, "s1")
    published = policy.as_published(db, "s1", {"idle_minutes": 5}, key)
    verify(published["agent_update"], school_keys.public_key(db, "s1"))
    assert published["agent_update"]["sha256"] == o["sha256"] and policy.get_policy(db, "s1")["version"] >= 1
    bad = tmp_path / "agent.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(UpdateError, match="not a wheel file name"):
        agent_updates.offer(db, tmp_path / "data", "s1", bad, 25)
    with pytest.raises(UpdateError, match="from 0 to 100"):
        agent_updates.offer(db, tmp_path / "data", "s1", wheel, 120)
    assert agent_updates.current(db, "s1")["percent"] == 25  # type: ignore[index]
    assert agent_updates.withdraw(db, "s1") and "agent_update" not in policy.as_published(db, "s1", {}, key)


def test_the_probe_reports_changes_at_once_and_otherwise_hourly() -> None:
    from agent.probes.projector import worth_reporting

    on = {"address": "a", "reachable": True, "power": "on", "lamp_hours": 10}
    assert worth_reporting(None, on, 0, 0, 3600)
    assert not worth_reporting(on, dict(on, lamp_hours=11), 0, 300, 3600)  # lamp hours alone: hourly
    assert worth_reporting(on, dict(on, lamp_hours=11), 0, 3600, 3600)
    assert worth_reporting(on, dict(on, power="cooling"), 0, 300, 3600)
    assert worth_reporting(on, {"address": "a", "reachable": False, "error": "timed out"}, 0, 300, 3600)
