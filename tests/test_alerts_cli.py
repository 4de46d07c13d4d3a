"""`bbt alerts ...` and `bbt faults ...`: config with masked secrets, silences, ack, 报修 entered afterwards, XLSX."""
from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from openpyxl import load_workbook

from alerts.evaluate import evaluate_school
from alerts.schedule import StaticSchedule
from bbt.cli import main
from collector import migrations
from collector.db import connect
from collector.intake.store import touch_device


def test_alert_and_fault_commands(tmp_path: Path) -> None:
    db_path = str(tmp_path / "bbt.db")
    db = connect(db_path)
    migrations.migrate(db)
    touch_device(db, "s1", "pc-301", time.time())
    run = CliRunner().invoke
    cfg = tmp_path / "alerts.json"
    cfg.write_text(json.dumps({"channels": {"maint": {"url": "wecombot://SECRETBOTKEY1", "person": "王师傅"}},
                               "routes": [{"match": {"min_severity": "warning"}, "channels": ["maint"]}]}))
    r = run(main, ["alerts", "config", "set", str(cfg), "--school", "s1", "--db", db_path])
    assert r.exit_code == 0 and "1 channels, 1 routes" in r.output, r.output
    r = run(main, ["alerts", "config", "show", "--school", "s1", "--db", db_path])
    assert r.exit_code == 0 and "wecombot://***" in r.output and "SECRETBOTKEY1" not in r.output
    assert json.loads(r.output)["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    cfg.write_text(json.dumps({"routes": [{"channels": ["nobody"]}]}))
    r = run(main, ["alerts", "config", "set", str(cfg), "--school", "s1", "--db", db_path])
    assert r.exit_code == 1 and "channel 'nobody' is not defined" in r.output and "Traceback" not in r.output

    r = run(main, ["faults", "add", "--school", "s1", "--device", "pc-301", "--code", "power_cut", "--severity",
                   "critical", "--reporter", "总务处", "--opened", "2026-11-23T08:00:00+08:00",
                   "--cleared", "2026-11-23T09:30:00+08:00", "--summary", "整栋楼停电", "--db", db_path])
    assert r.exit_code == 0 and "fault ticket 1 registered" in r.output, r.output
    r = run(main, ["faults", "add", "--school", "s1", "--device", "pc-999", "--code", "other", "--reporter", "a",
                   "--db", db_path])
    assert r.exit_code == 1 and "no device 'pc-999'" in r.output
    out = tmp_path / "register.xlsx"
    r = run(main, ["faults", "export", "--school", "s1", "--term", "2026-11-23", "--out", str(out), "--db", db_path])
    assert r.exit_code == 0 and "1 fault tickets" in r.output
    wb = load_workbook(out)
    assert wb["故障登记簿"]["J2"].value == "整栋楼停电" and wb["统计"]["B1"].value == 1
    wb.close()

    db.execute("INSERT INTO faults (school, device, code, severity, source, opened_t) VALUES "
               "('s1', 'pc-301', 'projector', 'warning', 'agent', ?)", (time.time(),))
    evaluate_school(db, "s1", time.time(), StaticSchedule({}), [])
    r = run(main, ["alerts", "list", "--school", "s1", "--db", db_path])
    assert r.exit_code == 0 and "firing\twarning\tpc-301 投影机故障 (projector)" in r.output, r.output
    alert_id = r.output.split("\t")[0]
    r = run(main, ["alerts", "ack", alert_id, "--by", "王师傅", "--db", db_path])
    assert r.exit_code == 0 and "acknowledged by 王师傅" in r.output

    r = run(main, ["alerts", "silence", "add", "--school", "s1", "--match", "building=实验楼", "--hours", "3",
                   "--maintenance", "--comment", "换线", "--db", db_path])
    assert r.exit_code == 0 and r.output.startswith("silence 1 until")
    r = run(main, ["alerts", "silence", "list", "--school", "s1", "--db", db_path])
    assert "maintenance" in r.output and "实验楼" in r.output
    assert run(main, ["alerts", "silence", "add", "--school", "s1", "--match", "oops", "--db", db_path]).exit_code == 2
    assert run(main, ["alerts", "silence", "expire", "1", "--db", db_path]).exit_code == 0
    assert run(main, ["alerts", "silence", "list", "--school", "s1", "--db", db_path]).output == ""
    db.close()
