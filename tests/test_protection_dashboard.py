"""The dashboard's side of protocol 1.2: the USB allow-list on the policy page, the protection state on
the device page and in /api/v1/devices (data stored through the real ingest path)."""
from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path

import protocol
from collector.devices import policy as pol
from tests.dash import SCHOOL, USERS, add_users, csrf_of, login, make_app, publish, school_day_at, seed_school


def form(page: str, **over: str) -> dict[str, str]:
    data = {"school": SCHOOL, "deny": "qq.exe", "allow": "", "action": "report", "teaching_apps": "",
            "idle_minutes": "5", "heartbeat_s": "60", "shutdown_after": "", "usb_allow_labels": "",
            "usb_allow_ids": "", "csrf_token": csrf_of(page)}
    data.update(over)
    return data


def test_policy_page_edits_the_usb_allow_list(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    add_users(db)
    client = app.test_client()
    login(client, USERS["admin"][0])
    page = client.get(f"/admin/policy?school={SCHOOL}").get_data(as_text=True)
    assert "允许的U盘卷标" in page and 'name="usb_block"' in page
    r = client.post("/admin/policy", data=form(page, usb_allow_labels="教学U盘\n希沃套件", usb_allow_ids="0781:5581 \n",
                                                usb_block="1"))
    assert r.status_code == 302
    stored = pol.get_policy(db, SCHOOL)["policy"]
    assert stored["usb"] == {"allow_labels": ["教学U盘", "希沃套件"], "allow_ids": ["0781:5581"], "block": True}
    page = client.get(f"/admin/policy?school={SCHOOL}").get_data(as_text=True)
    assert "教学U盘\n希沃套件</textarea>" in page and "checked" in page
    # a bad id is named, nothing is stored
    r = client.post("/admin/policy", data=form(page, usb_allow_ids="0781-5581"))
    assert r.status_code == 400 and "'0781-5581' is not vendor:product" in html.unescape(r.get_data(as_text=True))
    assert pol.get_policy(db, SCHOOL)["version"] == 1
    # unticked: block off
    r = client.post("/admin/policy", data=form(page, usb_allow_labels="教学U盘"))
    assert r.status_code == 302 and pol.usb_policy(db, SCHOOL) == {"allow_labels": ["教学U盘"], "allow_ids": [],
                                                                   "block": False}
    db.close()


def test_device_page_and_api_show_the_protection_state(tmp_path: Path) -> None:
    app = make_app(str(tmp_path / "bbt.db"))
    db = app.extensions["bbt_db"]
    seed_school(db)
    tokens = add_users(db)
    at = school_day_at(8, 0)
    publish(db, "pc-101", [("protection", at, {
        "enabled": True, "scanner": "Microsoft Defender", "signature_age_d": 10, "threats": 1,
        "threat_names": ["Trojan:Win32/Wacatac.B!ml"], "last_update": protocol.format_time(at - timedelta(days=3)),
        "products": [{"name": "Windows Defender", "enabled": True, "up_to_date": False}]}),
        ("usb", at, {"action": "inserted", "kind": "storage", "label": "KINGSTON", "vendor_id": "0951",
                     "product_id": "1666", "blocked": True})])
    client = app.test_client()
    login(client, USERS["maintainer"][0])
    page = client.get(f"/devices/{SCHOOL}/pc-101").get_data(as_text=True)
    assert "病毒防护与安全补丁" in page and "已开启" in page and "Trojan:Win32/Wacatac.B!ml" in page
    assert "病毒库已 10 天未更新（Microsoft Defender）" in page and "发现 1 个病毒或威胁未清除" in page
    assert "0951:1666" in page and "已阻止" in page
    other = client.get(f"/devices/{SCHOOL}/pc-102").get_data(as_text=True)
    assert "尚未上报" in other
    rows = client.get(f"/api/v1/devices?school={SCHOOL}",
                      headers={"Authorization": f"Bearer {tokens['maintainer']}"}).get_json()
    by = {r["device"]: r["protection"] for r in rows}
    assert by["pc-101"] == {"enabled": True, "reported": protocol.format_time(at.astimezone(protocol.parse_time(
        "2026-01-01T00:00:00Z").tzinfo)), "problems": ["virus", "av_outdated"]}
    assert by["pc-102"] is None
    db.close()
