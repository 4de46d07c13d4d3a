"""Asset ledger (issue 18): the agent's hardware identity (Linux DMI on a fake tree, Windows WMI through
a fake), the PC's ledger row from a real ingest, a swapped board raising a drift alert."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.probes import hwid
from alerts import store as alert_store
from alerts.engine import AlertEngine
from collector.school import assets
from tests.dash import SCHOOL, online, publish, school_day_at, school_hours, seed_school


def dmi_tree(root: Path, values: dict[str, str], unreadable: tuple[str, ...] = ()) -> None:
    d = root / "sys" / "class" / "dmi" / "id"
    d.mkdir(parents=True)
    for name, text in values.items():
        (d / name).write_text(text + "\n", encoding="utf-8")
    for name in unreadable:
        (d / name).mkdir()  # reading a directory fails like a root-only file does for a user


def test_linux_dmi_reader_on_a_fake_tree(tmp_path: Path) -> None:
    dmi_tree(tmp_path, {"sys_vendor": "LENOVO", "product_name": "ThinkCentre M720t", "product_serial": "PC0ABCDE",
                        "board_vendor": "LENOVO", "board_name": "3136", "board_serial": "L1HF9AB0123"})
    assert hwid.LinuxDmi(str(tmp_path)).read() == {
        "sys_vendor": "LENOVO", "sys_model": "ThinkCentre M720t", "sys_serial": "PC0ABCDE",
        "board_vendor": "LENOVO", "board_model": "3136", "board_serial": "L1HF9AB0123"}


def test_linux_dmi_serials_unreadable_without_root(tmp_path: Path) -> None:
    dmi_tree(tmp_path, {"sys_vendor": "Hasee", "product_name": "D5", "board_name": "B460"},
             unreadable=("product_serial", "board_serial"))
    got = hwid.LinuxDmi(str(tmp_path)).read()
    assert got["sys_vendor"] == "Hasee" and got["sys_model"] == "D5" and got["board_model"] == "B460"
    assert got["sys_serial"] is None and got["board_serial"] is None and got["board_vendor"] is None
    assert hwid.LinuxDmi(str(tmp_path / "nothing")).read() == dict.fromkeys(hwid.KEYS)


def test_windows_reader_with_a_fake_wmi() -> None:
    asked: list[tuple[str, list[str]]] = []
    instances = {"Win32_BIOS": [{"SerialNumber": " 8CG1234XYZ "}],
                 "Win32_ComputerSystem": [{"Manufacturer": "HP", "Model": "ProDesk 400 G7"}],
                 "Win32_BaseBoard": [{"Manufacturer": "HP", "Product": "8767", "SerialNumber": "PFXYZ0AB"}]}

    def query(cls: str, props: list[str]) -> list[dict[str, Any]]:
        asked.append((cls, props))
        return instances[cls]
    assert hwid.WindowsWmi(query).read() == {"sys_vendor": "HP", "sys_model": "ProDesk 400 G7",
                                             "sys_serial": "8CG1234XYZ", "board_vendor": "HP", "board_model": "8767",
                                             "board_serial": "PFXYZ0AB"}
    assert sorted(c for c, _ in asked) == ["Win32_BIOS", "Win32_BaseBoard", "Win32_ComputerSystem"]

    def broken(cls: str, props: list[str]) -> list[dict[str, Any]]:
        if cls == "Win32_BaseBoard":
            raise OSError("WMI repository corrupt")
        return instances[cls]
    got = hwid.WindowsWmi(broken).read()
    assert got["sys_serial"] == "8CG1234XYZ" and got["board_serial"] is None


def test_placeholder_serials_are_not_identities() -> None:
    assert assets.clean_serial("To Be Filled By O.E.M.") is None and assets.clean_serial("0000000") is None
    assert assets.clean_serial(" ABC123 ") == "ABC123" and assets.clean_serial(None) is None
    assert assets.hardware_changes({"serial": "A", "board_serial": "B"}, {"serial": None, "board_serial": "C"}) == \
        [("board_serial", "B", "C")]


def inventory(serial: str | None, board: str | None) -> dict[str, Any]:
    return {"hostname": "BBT-101", "os": "Windows 10", "cpu": "i5", "ram_mb": 8192, "disks": [], "displays": 1,
            "software": [], "inventory_id": "x", "part": 1, "parts": 1, "sys_vendor": "LENOVO",
            "sys_model": "ThinkCentre M720t", "sys_serial": serial, "board_vendor": "LENOVO", "board_model": "3136",
            "board_serial": board}


def test_inventory_fills_the_ledger_and_a_swapped_board_raises_drift(db: Any) -> None:
    seed_school(db)
    engine = AlertEngine(db, clock=school_hours)
    engine.run_once()  # the event scanner starts from now on
    t0 = school_day_at(8, 0)
    publish(db, "pc-101", [("inventory", t0, inventory("PC0ABCDE", "L1HF9AB0123"))], status=online("pc-101", t0))
    [row] = assets.list_assets(db, SCHOOL)
    assert (row["code"], row["item"], row["device"], row["room"], row["building"]) == \
        ("pc-101", "pc", "pc-101", "A101", "A楼")
    assert (row["maker"], row["model"], row["serial"], row["board_serial"]) == \
        ("LENOVO", "ThinkCentre M720t", "PC0ABCDE", "L1HF9AB0123")
    # a later inventory read without root: unreadable serials are no change
    publish(db, "pc-101", [("inventory", school_day_at(8, 10), inventory(None, None))], first_seq=1)
    engine.run_once()
    assert not [a for a in alert_store.list_alerts(db, SCHOOL, "open", 100) if a["kind"] == "drift"]
    # the board is swapped
    publish(db, "pc-101", [("inventory", school_day_at(8, 20), inventory("PC0ABCDE", "NEWBOARD77"))], first_seq=2)
    engine.run_once()
    [alert] = [a for a in alert_store.list_alerts(db, SCHOOL, "open", 100) if a["kind"] == "drift"]
    assert alert["device"] == "pc-101" and "主板序列号" in alert["subject"] and "NEWBOARD77" in alert["subject"]
    assert assets.list_assets(db, SCHOOL)[0]["board_serial"] == "NEWBOARD77"
    [d] = db.query("SELECT field, old_value, new_value FROM drift WHERE device = 'pc-101'")
    assert (d["field"], d["old_value"], d["new_value"]) == ("board_serial", "L1HF9AB0123", "NEWBOARD77")


def test_inventory_probe_sends_the_identity_in_its_first_part(tmp_path: Path) -> None:
    from agent.probes import inventory as inv
    from tests.test_agent_probes import events, make_ctx

    dmi_tree(tmp_path, {"sys_vendor": "LENOVO", "product_name": "M720t", "board_name": "3136"},
             unreadable=("product_serial", "board_serial"))
    lines = "".join(f"pkg-{i:04d}\t1.{i}\tDebian\n" for i in range(3000))
    probe = inv.InventoryProbe(software=inv.PosixSoftware(lambda a: lines if a[0] == "dpkg-query" else ""),
                               displays=type("D", (), {"count": lambda self: 1})(),
                               identity=hwid.LinuxDmi(str(tmp_path)))
    ctx = make_ctx(tmp_path / "agent")
    probe.run(ctx)
    first, *rest = [e["data"] for e in events(ctx, "inventory")]
    assert rest and {k: first[k] for k in hwid.KEYS} == {"sys_vendor": "LENOVO", "sys_model": "M720t",
                                                         "sys_serial": None, "board_vendor": None,
                                                         "board_model": "3136", "board_serial": None}
    assert not any(k in part for part in rest for k in hwid.KEYS)
