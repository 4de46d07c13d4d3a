"""A user's mistake gets one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_bbt


def assert_one_line_error(r, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_import_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(run_bbt("import", "devices", str(tmp_path / "nope.csv"), "--school", "s1",
                           "--db", str(tmp_path / "b.db")), "nope.csv", "no such file")


def test_import_bad_row_names_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "devices.csv"
    f.write_text("device,class\npc-1,七年级1班\npc 2,七年级2班\n", encoding="utf-8")
    db = str(tmp_path / "b.db")
    assert_one_line_error(run_bbt("import", "devices", str(f), "--school", "s1", "--db", db),
                   "devices.csv", "line 3", "column device")
    f.write_text("device,class\npc-1,七年级1班\npc-1,七年级2班\n", encoding="utf-8")
    assert_one_line_error(run_bbt("import", "devices", str(f), "--school", "s1", "--db", db),
                          "line 3", "repeats line 2")
    f.write_text("device,klass\npc-1,x\n", encoding="utf-8")
    assert_one_line_error(run_bbt("import", "devices", str(f), "--school", "s1", "--db", db), "missing column", "class")


def test_import_applies_nothing_on_error(tmp_path: Path) -> None:
    db = str(tmp_path / "b.db")
    good = tmp_path / "good.csv"
    good.write_text("\ufeffdevice,class,building,floor\npc-1,七年级1班,A楼,1楼\n", encoding="utf-8")
    r = run_bbt("import", "devices", str(good), "--school", "s1", "--db", db)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("device,class\npc-9,八年级1班\npc-1,\n", encoding="utf-8")
    assert_one_line_error(run_bbt("import", "devices", str(bad), "--school", "s1", "--db", db), "line 3", "class")
    from collector.db import connect

    d = connect(db)
    assert d.query("SELECT device, class FROM devices") == [{"device": "pc-1", "class": "七年级1班"}]
    d.close()


@pytest.mark.parametrize("args,needle", [
    (("user", "add", "x", "--role", "wizard", "--password-stdin"), "role 'wizard'"),
    (("user", "add", "x", "--role", "teacher", "--password-stdin"), "needs --school"),
    (("token", "create", "--user", "nobody"), "no user 'nobody'"),
    (("server", "--broker", "http://example"), "mqtt://"),
    (("agent", "run", "--school", "bad school", "--broker", "mqtt://127.0.0.1:1"), "school 'bad school'"),
    (("import", "gadgets", "x.csv", "--school", "s1"), "unknown import kind"),
])
def test_domain_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    if args[0] == "import":
        (tmp_path / "x.csv").write_text("a\n1\n")
        args = (*args[:2], str(tmp_path / "x.csv"), *args[3:])
    r = run_bbt(*args, env={"BBT_DB": str(tmp_path / "b.db"), "BBT_AGENT_DATA_DIR": str(tmp_path / "a")},
                input="long-enough-password\n")
    assert_one_line_error(r, needle)


def test_bad_db_url(tmp_path: Path) -> None:
    assert_one_line_error(run_bbt("token", "create", "--user", "x", "--db", "mysql://nope"), "unsupported database URL")


def test_dashboard_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_bbt("server", "--http", f"127.0.0.1:{port}", "--mqtt-port", "0", "--db", str(tmp_path / "b.db"))
    assert_one_line_error(r, f"127.0.0.1:{port}", "--http")
