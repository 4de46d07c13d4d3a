"""`bbt demo`: build the demo school, start the server and simulated PCs, print where to look."""
from __future__ import annotations

import secrets
import signal
import threading
import time
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from bbt import demo, demo_story
from bbt.sim import Simulation
from collector.lessons.school_calendar import iso_week

ROLES = (("admin", "系统管理员"), ("headteacher", "校长"), ("class_teacher", "班主任"), ("teacher", "任课教师"),
         ("maintainer", "维护人员"))


def demo_days(today: date) -> list[date]:
    """The school days the demo replays: last week's and this week's up to today (bbt.demo_story)."""
    return demo_story.history_days(today)


def write_calendar(folder: Path, days: list[date]) -> Path:
    """The demo's term starts with the first replayed day and runs on past today, so its rates count
    only the lessons it simulates."""
    path = folder / "calendar.csv"
    end = days[-1] + timedelta(days=120)
    path.write_text(f"date,kind,follows_weekday,term\n{days[0]},term_start,,演示学期\n{end},term_end,,演示学期\n",
                    encoding="utf-8")
    return path


def logins_for(school: demo.DemoSchool) -> list[tuple[str, str, str | None]]:
    """(role, user name, class) for each role a visitor can try: a class teacher is the one who takes
    their class's 班会, a teacher a name in the timetable (whose lessons they see)."""
    first = school.devices[0]["class"]
    head = next(r["teacher"] for r in school.timetable if r["class"] == first and r["subject"] == demo.HOMEROOM)
    teacher = next(r["teacher"] for r in school.timetable if r["class"] == first and r["subject"] == "英语")
    return [("admin", "admin", None), ("headteacher", "校长", None), ("class_teacher", head, first),
            ("teacher", teacher, None), ("maintainer", demo_story.MAINTAINER, None)]


def prepare(folder: Path, days: list[date] | None = None
            ) -> tuple[str, dict[str, tuple[str, str]], demo.DemoSchool]:
    """Fresh demo store with the school imported and a user per role; returns (db path,
    {role: (user, password)}, school)."""
    from collector import migrations
    from collector.db import connect
    from collector.devices import policy
    from collector.devices.registry import ensure_school
    from collector.lessons import usage_settings
    from collector.school import imports
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
    # the demo publishes no week by itself: a visitor can try 公布 on the usage page
    usage_settings.update(db, demo.SCHOOL, {"publish_weekly": "off"})
    policy.set_policy(db, demo.SCHOOL, demo_story.POLICY)
    logins: dict[str, tuple[str, str]] = {}
    for role, name, klass in logins_for(school):
        password = secrets.token_urlsafe(9)
        add_user(db, name, role, password, school=None if role == "admin" else demo.SCHOOL, klass=klass,
                 must_change=False)
        logins[role] = (name, password)
    db.close()
    return str(db_path), logins, school


def provision_devices(db_path: str, devices: list[str]) -> dict[str, str]:
    """The simulated PCs' own MQTT accounts (the embedded broker is closed), made server-side as an
    admin's script would; a real PC gets its account by enrolling."""
    from collector.db import connect
    from collector.intake import credentials

    db = connect(db_path)
    try:
        return {d: credentials.provision(db, demo.SCHOOL, d, "demo") for d in devices}
    finally:
        db.close()


def write_history(db_path: str, school: demo.DemoSchool, days: list[date], now: datetime) -> demo_story.Story:
    """Replay the past days into the store, with progress lines, then the fault register's entries."""
    from collector.db import connect

    started = time.monotonic()
    today = now.date()

    def progress(i: int, n: int) -> None:
        label = "今天到此刻" if days[i - 1] == today else str(days[i - 1])
        click.echo(f"正在生成本周历史数据… {i}/{n} 天（{label}）")

    db = connect(db_path)
    try:
        story = demo_story.replay(db, school, days, now, progress)
        demo_story.register(db, school, days, now)
        click.echo(f"回放完成：{len(days)} 个上课日，{story.events} 条事件，用时 {time.monotonic() - started:.0f} 秒")
        for label, day in (("上周", today - timedelta(days=7)), ("本周至今", today)):
            click.echo(f"  {label} {week_summary(db, iso_week(day), now)}")
    finally:
        db.close()
    return story


def week_summary(db: Any, week: str, now: datetime) -> str:
    """One line on a week's figures, as the usage page shows them (collector.rates.usage owns the rate)."""
    from collector.rates import usage

    rows = usage.week_rates(db, demo.SCHOOL, week, "teacher", now.timestamp())
    scheduled = sum(r["scheduled"] for r in rows)
    if not scheduled:
        return f"{week}：还没有上过课 / no lessons yet"
    rate = sum(r["used"] for r in rows) / scheduled
    below = sum(1 for r in rows if r["below_threshold"])
    return f"{week}：全校使用率 {rate:.0%}，{len(rows)} 位教师中 {below} 位未达标（达标线见使用率页）"


def start_live(srv: Any, story: demo_story.Story, passwords: dict[str, str], now: datetime) -> Simulation:
    """Today from now on, on the real clock: the PCs that are on connect and carry on; a game appears."""
    devices = [dev.live(replace(srv.broker_cfg, username=name, password=passwords[name]))
               for name, dev in story.devices.items()]
    sim = Simulation(devices, story.later, demo.TZ)
    sim.start()
    deadline = time.monotonic() + 20
    while srv.alerts is not None and srv.alerts.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # the engine alerts on what happens after its first pass
    name, exe, rule = demo_story.GAME
    sim.add(demo_story.live_game_device(story), (sim.now() + timedelta(seconds=2), "software",
                                                 {"name": name, "exe": exe, "rule": rule}))
    return sim


def print_welcome(srv: Any, logins: dict[str, tuple[str, str]], days: list[date], devices: int) -> None:
    click.echo("")
    click.echo(f"  仪表盘 Dashboard: {srv.url}")
    for role, label in ROLES:
        name, password = logins[role]
        click.echo(f"  登录 Login（{label} {role}）：{name} / {password}")
    click.echo(f"  MQTT 代理 Broker: {srv.broker_cfg.url}")
    click.echo(f"  {devices} 台模拟教室电脑。{days[0]} 起的上课日已写入；今天按真实时钟实时进行，"
               "“最后联系”和“使用中”就是此刻的状态。")
    click.echo("  Past school days are stored; today plays live on the real clock.")
    now = datetime.now(ZoneInfo(demo.TZ))
    first, last = demo.BELL[0][1], demo.BELL[-1][2]
    if days[-1] != now.date() or not first <= now.strftime("%H:%M") < last:
        click.echo(f"  现在不是上课时间：放学后教室电脑都关机，只有一台忘了关（见告警）；上课日 {first}–{last} "
                   "可看到电脑“使用中”。Outside school hours: the PCs are off, but one left on.")
    for w in sorted({iso_week(d) for d in days}):
        click.echo(f"  使用率周报 Weekly report {w}: {srv.url}api/v1/usage/report?school={demo.SCHOOL}&week={w}"
                   "&format=html")
    click.echo("  Ctrl-C 停止 / to stop")


def run_demo(data_dir: str, http_host: str, http_port: int, mqtt_port: int, duration: float = 0.0) -> None:
    from bbt.server import Server, ServerOptions

    folder = Path(data_dir)
    click.echo(f"建立演示学校 {demo.SCHOOL_NAME}（{folder}）…")
    now = datetime.now(ZoneInfo(demo.TZ))
    days = demo_days(now.date())
    db_path, logins, school = prepare(folder, days)
    story = write_history(db_path, school, days, now)
    passwords = provision_devices(db_path, list(story.devices))
    srv = Server(ServerOptions(db_url=db_path, http_host=http_host, http_port=http_port, mqtt_port=mqtt_port),
                 notice=lambda m: click.echo(m, err=True))
    srv.start()
    sim = start_live(srv, story, passwords, datetime.now(ZoneInfo(demo.TZ)))
    print_welcome(srv, logins, days, len(story.devices))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    started = time.monotonic()
    while not done.wait(1.0):
        if duration and time.monotonic() - started >= duration:
            break
    sim.stop(power_off=False)
    srv.stop()
