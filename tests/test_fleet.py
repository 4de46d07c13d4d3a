"""`bbt simulate`'s fleet: realistic days for many devices over pooled connections, through a real
Mosquitto into two collectors sharing a subscription (both backends); nothing lost."""
from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

from bbt.fleet import Fleet, FleetSpec, device_day, plan_schools, write_school_data
from collector.intake.service import Collector
from common.mqttconf import parse_broker_url
from tests.brokers import Mosquitto
from tests.helpers import run_bbt, wait_for

DAY = date(2026, 11, 20)  # a Friday in the past


def test_a_day_is_realistic() -> None:
    spec = FleetSpec(schools=3, devices=40, day=DAY, power_cut_rate=1.0, leave_on=0.1, fault_rate=0.2)
    plans = plan_schools(spec, DAY)
    assert len(plans) == 120 and len({(p.school, p.device) for p in plans}) == 120
    used = lessons = left_on = unclean = 0
    for n, p in enumerate(plans):
        steps = list(device_day(p, spec, random.Random(n)))
        assert [s[0] for s in steps] == sorted(s[0] for s in steps)
        lessons += len(p.lessons)
        used += sum(1 for s in steps if s[2] == "session" and s[3]["state"] == "start")
        left_on += not any(s[2] == "power" and s[3]["state"] == "off" for s in steps)
        unclean += any(s[2] == "power" and s[3].get("clean") is False for s in steps)
        if p.power_cut:
            a, b = p.power_cut
            assert not any(a < s[0] < b for s in steps)  # silent while the power is off
    assert 0.55 < used / lessons < 0.95  # most teachers use it in most lessons, some rarely
    assert 0 < left_on < 40
    assert unclean >= 30  # building A of every school lost power


def test_fleet_through_broker_into_two_collectors(mosquitto: Mosquitto, db, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broker = parse_broker_url(mosquitto.url)
    cols = [Collector(db.url, broker, client_id=f"col-{i}", share_group="bbt", batch_ms=20) for i in range(2)]
    for c in cols:
        c.start()
    try:
        for c in cols:
            assert c.connected.wait(10)
        spec = FleetSpec(schools=2, devices=15, day=DAY, heartbeat_s=600, power_cut_rate=1.0, fault_rate=0.3,
                         game_rate=0.3, connections=3)
        res = Fleet(spec, broker).run_day(0, flat_out_step=900)
        assert res.devices == 30 and res.events > 1000
        wait_for(lambda: sum(c.totals.stored for c in cols) >= res.events
                 and sum(c.totals.statuses for c in cols) >= res.statuses, 30, what="all events and statuses stored")
        assert all(c.totals.stored > 0 for c in cols)  # the broker shared the load
    finally:
        for c in cols:
            c.stop()
    assert db.query("SELECT COUNT(*) AS n FROM events")[0]["n"] == res.events
    by_school = {r["school"]: r["n"] for r in db.query("SELECT school, COUNT(*) AS n FROM events GROUP BY school")}
    assert by_school == res.published_by_school
    assert db.query("SELECT COUNT(*) AS n FROM devices")[0]["n"] == 30
    assert db.query("SELECT COUNT(*) AS n FROM gaps WHERE closed IS NULL")[0]["n"] == 0
    lost = db.query("SELECT COUNT(*) AS n FROM (SELECT DISTINCT school, device FROM status_log "
                    "WHERE reason = 'lost') x")[0]["n"]
    assert lost >= 14  # building A's PCs in both schools: 'lost' published for them by the pool
    kinds = {r["type"] for r in db.query("SELECT DISTINCT type FROM events")}
    assert {"power", "session", "heartbeat", "fault", "software"} <= kinds
    unclean = [json.loads(r["data"]) for r in db.query("SELECT data FROM events WHERE type = 'power'")]
    assert any(d.get("clean") is False for d in unclean)


def test_school_data_files_and_cli_errors(tmp_path: Path) -> None:
    spec = FleetSpec(schools=2, devices=5, day=DAY)
    files = write_school_data(spec, DAY, tmp_path)
    assert sorted(p.name for p in files if p.parent.name == "sch001") == ["bell.csv", "devices.csv", "timetable.csv"]
    rows = (tmp_path / "sch001" / "timetable.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "class,weekday,period,teacher,subject" and len(rows) == 1 + 5 * 7
    r = run_bbt("simulate", "--day", "2026-13-01", "--broker", "mqtt://127.0.0.1:1")
    assert r.returncode != 0 and "--day '2026-13-01' is not YYYY-MM-DD" in r.stderr
