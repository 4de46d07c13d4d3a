"""Deny rules that would hit the system or every program are refused: by protocol.validate_policy (the one
check), by `bbt policy set`, by the dashboard's policy page and by the agent (which reports it and keeps
the policy it had)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import protocol
from agent.probes import software
from collector.devices import policy as pol
from protocol.programs import SYSTEM_PROGRAMS, is_system_program, unsafe_deny_rules
from tests.dash import SCHOOL, USERS, add_users, csrf_of, login, make_app, seed_school
from tests.helpers import run_bbt
from tests.test_agent_probes import events, make_ctx

REFUSED = [  # rule -> what the error names ("" : every program)
    ("*", ""), ("*.exe", ""), ("*.EXE", ""), ("?*", ""), ("*e*", ""), ("/usr/*", ""), ("*/bin/*", ""),
    ("c:\\program files\\*", ""), ("C:\\Users\\*", ""), ("d:\\*", ""),
    ("c:\\windows\\*", "c:/windows/system32/smss.exe"), ("C:/Windows/System32/*", "c:/windows/system32/smss.exe"),
    ("svchost*", "svchost.exe"), ("explorer.exe", "explorer.exe"), ("EXPLORER.EXE", "explorer.exe"),
    ("winlogon.exe", "winlogon.exe"), ("csrss*", "csrss.exe"), ("dwm.exe", "dwm.exe"), ("python*", "python"),
    ("gnome-shell", "gnome-shell"), ("Xorg", "xorg"), ("Xwayland", "xwayland"), ("kwin*", "kwin"),
    ("systemd", "systemd"), ("dbus-daemon", "dbus-daemon"), ("sddm", "sddm"), ("lightdm", "lightdm"),
    ("ukui-*", "ukui-session"), ("dde-*", "dde-session"), ("startdde", "startdde"), ("bbt-agent*", "bbt-agent.exe"),
]
ACCEPTED = ["*game*", "qq.exe", "qq*", "wechat*", "minecraft*", "*steam*", "gnome-mines", "sol.exe", "tetris",
            "*\\steamapps\\*", "/home/*/games/*", "c:\\games\\*", "douyin*", "4399*", "FOO-*"]


@pytest.mark.parametrize("rule,hits", REFUSED)
def test_a_rule_that_hits_the_system_or_everything_is_refused(rule: str, hits: str) -> None:
    assert unsafe_deny_rules([rule]) == [(rule, hits)]
    with pytest.raises(protocol.UnsafePolicy) as e:
        protocol.validate_policy({"software": {"deny": ["qq.exe", rule], "action": "report"}})
    assert repr(rule) in e.value.message and (hits or "every program") in e.value.message
    assert e.value.code == "unsafe_policy" and e.value.problems == [(rule, hits)]


@pytest.mark.parametrize("rule", ACCEPTED)
def test_rules_aimed_at_games_and_chat_are_accepted(rule: str) -> None:
    assert unsafe_deny_rules([rule]) == []
    assert protocol.validate_policy({"software": {"deny": [rule], "action": "block"}})["software"]["deny"] == [rule]


def test_the_built_in_deny_list_is_safe_and_the_list_is_lower_case() -> None:
    assert unsafe_deny_rules(software.DEFAULT_DENY) == []
    assert all(n == n.lower() and p == p.lower() for n, p in SYSTEM_PROGRAMS)
    assert is_system_program("Explorer.EXE") and is_system_program("svchost") and is_system_program("python3")
    assert is_system_program("gnome-session-b", "/usr/libexec/gnome-session-binary")  # a name the kernel cut
    assert not is_system_program("qq.exe", "C:\\Program Files\\Tencent\\QQ\\qq.exe")


def test_bbt_policy_set_refuses_and_stores_nothing(db_path: str, tmp_path: Path) -> None:
    for deny, named in ((["*"], "会命中所有程序"), (["minecraft*", "explorer.exe"], "系统程序 explorer.exe")):
        f = tmp_path / "p.json"
        f.write_text(json.dumps({"software": {"deny": deny, "action": "block"}}), encoding="utf-8")
        r = run_bbt("policy", "set", str(f), "--school", "s1", "--db", db_path, "--no-publish")
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "p.json" in r.stderr and named in r.stderr and repr(deny[-1]) in r.stderr, r.stderr
        assert "policy not stored" in r.stderr
    r = run_bbt("policy", "show", "--school", "s1", "--db", db_path)
    assert json.loads(r.stdout) == protocol.DEFAULT_POLICY  # nothing was stored


def test_the_dashboard_policy_page_refuses_in_chinese(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    client = app.test_client()
    login(client, USERS["admin"][0])
    pol.set_policy(db, SCHOOL, {"software": {"deny": ["qq.exe"], "action": "block"}})

    def post(deny: str) -> Any:
        page = client.get(f"/admin/policy?school={SCHOOL}").get_data(as_text=True)
        return client.post("/admin/policy", data={
            "school": SCHOOL, "deny": deny, "allow": "", "action": "block", "teaching_apps": "",
            "idle_minutes": "5", "heartbeat_s": "60", "shutdown_after": "", "csrf_token": csrf_of(page)})

    r = post("qq.exe\n*.exe\nsvchost*")
    text = r.get_data(as_text=True)
    assert r.status_code == 400
    assert "策略未保存" in text and "禁止规则“*.exe”会命中所有程序" in text
    assert "禁止规则“svchost*”会命中系统程序 svchost.exe" in text
    assert pol.get_policy(db, SCHOOL)["version"] == 1  # the old policy stays
    assert post("qq.exe\nwechat*").status_code == 302
    assert pol.get_policy(db, SCHOOL)["policy"]["software"]["deny"] == ["qq.exe", "wechat*"]
    db.close()


def test_the_agent_refuses_reports_and_keeps_its_policy(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.set_policy({"software": {"deny": ["qq.exe"], "action": "block"}})
    with pytest.raises(protocol.UnsafePolicy):
        ctx.set_policy({"software": {"deny": ["*"], "action": "block"}})
    assert ctx.raw_policy["software"]["deny"] == ["qq.exe"]  # the previous policy stays
    assert json.loads(ctx.outbox.get_meta("policy") or "{}")["software"]["deny"] == ["qq.exe"]
    assert software.rules(ctx).verdict("bash", "/usr/bin/bash") is None
    fault = events(ctx, "fault")
    assert [(e["data"]["code"], e["data"]["state"]) for e in fault] == [("policy_refused", "raised")]
    assert "'*'" in fault[0]["data"]["detail"] and "every program" in fault[0]["data"]["detail"]
    ctx.set_policy({"software": {"deny": ["wechat*"], "action": "block"}})  # a valid one clears the fault
    assert [e["data"]["state"] for e in events(ctx, "fault")] == ["raised", "cleared"]
    # an unsafe policy saved by an older agent is refused at the next start: only the defaults (report) apply
    ctx.outbox.set_meta("policy", json.dumps({"software": {"deny": ["explorer.exe"], "action": "block"}}))
    again = make_ctx(tmp_path)
    assert again.raw_policy == {} and software.rules(again).action == "report"
    assert events(again, "fault")[-1]["data"]["state"] == "raised"
    assert "explorer.exe" in events(again, "fault")[-1]["data"]["detail"]
