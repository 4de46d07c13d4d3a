"""`bbt demo`: build the demo school, start the server and simulated PCs, print where to look."""
from __future__ import annotations

import secrets
import signal
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import click

from bbt import demo


def demo_days(today: date, count: int = 5) -> list[date]:
    """The last ``count`` ordinary school days before today (Monday to Friday, not a public holiday),
    oldest first (their events are in the past)."""
    from collector.school_calendar import official

    days: list[date] = []
    d = today - timedelta(days=1)
    while len(days) < count:
        if d.isoweekday() <= 5 and official(d)[0] == "normal":
            days.append(d)
        d -= timedelta(days=1)
    return sorted(days)


def write_calendar(folder: Path, days: list[date]) -> Path:
    """The demo's term runs over exactly the simulated days, so its rates count only those lessons."""
    path = folder / "calendar.csv"
    path.write_text(f"date,kind,follows_weekday,term\n{days[0]},term_start,,演示学期\n{days[-1]},term_end,,演示学期\n",
                    encoding="utf-8")
    return path


def prepare(folder: Path, days: list[date] | None = None) -> tuple[str, str, demo.DemoSchool]:
    """Fresh demo store with the school imported and an admin user; returns (db path, password, school)."""
    from collector import imports, migrations, usage_settings
    from collector.db import connect
    from collector.registry import ensure_school
    from dashboard.users import add_user

    folder.mkdir(parents=True, exist_ok=True)
    db_path = folder / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    school = demo.build()
    files = demo.write_csvs(school, folder)
    files["calendar"] = write_calendar(folder, days or demo_days(date.today()))
    db = connect(str(db_path))
    migrations.migrate(db)
    ensure_school(db, demo.SCHOOL, demo.SCHOOL_NAME, demo.TZ)
    for kind, path in files.items():
        if kind in imports.IMPORTERS:
            imports.run_import(db, kind, demo.SCHOOL, path)
    # the simulated week is replayed after the server starts: publish it by hand, not on the schedule
    usage_settings.update(db, demo.SCHOOL, {"publish_weekly": "off"})
    password = secrets.token_urlsafe(9)
    add_user(db, "admin", "admin", password, must_change=False)
    db.close()
    return str(db_path), password, school


def provision_devices(db_path: str, devices: list[str]) -> dict[str, str]:
    """The simulated PCs' own MQTT accounts (the embedded broker is closed), made server-side as an
    admin's script would; a real PC gets its account by enrolling."""
    from collector import credentials
    from collector.db import connect

    db = connect(db_path)
    try:
        return {d: credentials.provision(db, demo.SCHOOL, d, "demo") for d in devices}
    finally:
        db.close()


def run_demo(data_dir: str, speed: float, http_host: str, http_port: int, mqtt_port: int,
             duration: float = 0.0) -> None:
    from bbt.sim import Simulation
    from collector.server import Server, ServerOptions

    folder = Path(data_dir)
    click.echo(f"建立演示学校 {demo.SCHOOL_NAME}（{folder}）…")
    days = demo_days(date.today())
    db_path, password, school = prepare(folder, days)
    srv = Server(ServerOptions(db_url=db_path, http_host=http_host, http_port=http_port, mqtt_port=mqtt_port),
                 notice=lambda m: click.echo(m, err=True))
    srv.start()
    assert srv.broker_cfg is not None
    devices = [d["device"] for d in school.devices]
    sim = Simulation(demo.SCHOOL, devices, srv.broker_cfg, school.lessons_for, days, demo.TZ, speed=speed,
                     passwords=provision_devices(db_path, devices))
    sim.start()
    click.echo("")
    click.echo(f"  仪表盘 Dashboard: {srv.url}")
    click.echo(f"  登录 Login:       admin / {password}")
    click.echo(f"  MQTT 代理 Broker: {srv.broker_cfg.url}")
    click.echo(f"  模拟 {len(school.devices)} 台教室电脑，{days[0]} 至 {days[-1]}，{speed:g} 倍速")
    weeks = sorted({f"{d.isocalendar()[0]}-W{d.isocalendar()[1]:02d}" for d in days})
    for w in weeks:
        click.echo(f"  使用率周报 Weekly report: {srv.url}api/v1/usage/report?school={demo.SCHOOL}&week={w}"
                   "&format=html")
    click.echo("  Ctrl-C 停止 / to stop")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    started = time.monotonic()
    last_day = -1
    while not done.wait(1.0):
        if sim.day_index != last_day:
            last_day = sim.day_index
            click.echo(f"  模拟日期 {days[last_day]} …")
        if duration and time.monotonic() - started >= duration:
            break
    sim.stop()
    srv.stop()
