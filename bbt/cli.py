"""The `bbt` command line. It parses, calls the domain and turns its errors into one line.

Python 3.8+ (the agent's classroom PCs): server modules are imported inside the commands.
Other areas add their commands in their own modules listed in EXTENSIONS (each defines
``register(main)``).
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any, Callable, Optional

import click

from common import __version__
from common.errors import BbtError

EXTENSIONS: list = [
    "bbt.cli_alerts",
    "bbt.cli_trust",
    "bbt.cli_district",
    "bbt.cli_dashboard",
    "bbt.cli_usage",
    "bbt.cli_collector",
    "bbt.cli_enrol",
    "bbt.cli_power",
    "bbt.cli_agent",
    "bbt.cli_update",
]


class BbtGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BbtError as e:
            raise click.ClickException(str(e)) from None
        except ValueError as e:
            if type(e).__name__ == "Rejected":
                raise click.ClickException(str(e)) from None
            raise


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--db", "db_url", envvar="BBT_DB", default=None, metavar="PATH_OR_URL",
                        help="SQLite file or postgresql:// URL (env BBT_DB; default: the data directory's bbt.db)")(f)


def open_db(db_url: Optional[str]) -> Any:
    from collector import migrations
    from collector.db import connect

    db = connect(db_url)
    migrations.migrate(db)
    return db


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("amqtt", "transitions", "waitress", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(cls=BbtGroup)
@click.version_option(__version__, prog_name="bbt")
@click.option("-v", "--verbose", is_flag=True, help="More log output.")
def main(verbose: bool) -> None:
    """bbt — 班班通教室电脑监控 / monitoring for classroom multimedia PCs."""
    setup_logging(verbose)


def parse_hostport(value: str, default_host: str = "127.0.0.1") -> "tuple[str, int]":
    host, _, port = value.rpartition(":")
    try:
        return (host or default_host), int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HOST:PORT") from None


def broker_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--broker", default=None, help="mqtt://HOST:PORT or mqtts://HOST:PORT"),
        click.option("--mqtt-username", default=None, envvar="BBT_MQTT_USERNAME"),
        click.option("--mqtt-password", default=None, envvar="BBT_MQTT_PASSWORD"),
        click.option("--ca", "ca_file", default=None, type=click.Path(exists=True, dir_okay=False),
                     help="CA certificate that signed the broker's certificate (enables TLS)"),
        click.option("--cert", "cert_file", default=None, type=click.Path(exists=True, dir_okay=False)),
        click.option("--key", "key_file", default=None, type=click.Path(exists=True, dir_okay=False)),
    ]):
        f = opt(f)
    return f


def broker_from(broker: Optional[str], mqtt_username: Optional[str], mqtt_password: Optional[str],
                ca_file: Optional[str], cert_file: Optional[str], key_file: Optional[str]) -> Any:
    if broker is None:
        return None
    from common.mqttconf import parse_broker_url

    return parse_broker_url(broker, username=mqtt_username, password=mqtt_password, ca_file=ca_file,
                            cert_file=cert_file, key_file=key_file)


@main.command()
@db_option
@broker_options
@click.option("--http", default="127.0.0.1:8080", show_default=True, help="HOST:PORT of the dashboard")
@click.option("--mqtt-port", default=None, type=int, help="port of the embedded broker (default 1883; 8883 with "
                                                          "--mqtt-tls)")
@click.option("--mqtt-tls", is_flag=True, help="the embedded broker speaks TLS only, with a school CA made on "
                                               "first start (enrolment hands it to the PCs)")
@click.option("--mqtt-tls-host", multiple=True, help="a name or IP the PCs use for this server, for the broker's "
                                                     "certificate (repeatable; the host's own names are added)")
@click.option("--mqtt-host", default=None, envvar="BBT_MQTT_HOST",
              help="address the embedded broker listens on (default: all interfaces, 0.0.0.0, unless --http "
                   "is on loopback, then 127.0.0.1)")
@click.option("--share-group", default=None, envvar="BBT_SHARE_GROUP",
              help="join the collectors' MQTT shared-subscription group (district set-up)")
@click.option("--client-id", default="bbt-collector", show_default=True, envvar="BBT_CLIENT_ID",
              help="the collector's MQTT client id (unique per process, stable across restarts)")
@click.option("--one-process", is_flag=True, envvar="BBT_ONE_PROCESS",
              help="run ingest, alerts and the dashboard in this one process (default: ingest in one child "
                   "process, dashboard and alerts in another, both restarted when they die)")
@click.option("--ingest-processes", default=1, show_default=True, type=click.IntRange(1, 16),
              envvar="BBT_INGEST_PROCESSES",
              help="ingest processes sharing the stream (MQTT shared subscription; needs --broker): for a server "
                   "with cores to spare")
def server(db_url: Optional[str], http: str, mqtt_port: Optional[int], mqtt_tls: bool, mqtt_tls_host: Any,
           mqtt_host: Optional[str], share_group: Optional[str], client_id: str, one_process: bool,
           ingest_processes: int, **broker_kw: Any) -> None:
    """Collector + dashboard (and the embedded broker when no --broker is given)."""
    from bbt.processes import Supervisor
    from bbt.server import Server, ServerOptions

    if one_process and ingest_processes > 1:
        raise click.UsageError("--ingest-processes and --one-process exclude each other")
    host, port = parse_hostport(http)
    opts = ServerOptions(db_url=db_url, broker=broker_from(**broker_kw), http_host=host, http_port=port,
                         mqtt_port=(8883 if mqtt_tls else 1883) if mqtt_port is None else mqtt_port,
                         mqtt_host=mqtt_host,
                         mqtt_tls=mqtt_tls, mqtt_tls_hosts=list(mqtt_tls_host), share_group=share_group,
                         client_id=client_id, ingest_processes=ingest_processes)
    notice = lambda m: click.echo(m, err=True)  # noqa: E731
    srv = Server(opts, notice=notice) if one_process else Supervisor(opts, notice=notice)
    srv.start()
    assert srv.broker_cfg is not None
    click.echo(f"bbt server: broker {srv.broker_cfg.url}{_listening(srv)}, dashboard {srv.url}")
    srv.serve_forever()


def _listening(srv: Any) -> str:
    """What the start-up line says about the embedded broker: where it listens, and that it is closed."""
    if not srv.mqtt_bind:
        return ""
    port = srv.broker_cfg.port
    where = ("all interfaces" if srv.mqtt_bind in ("0.0.0.0", "::") else
             "this computer only" if srv.mqtt_bind in ("127.0.0.1", "localhost", "::1") else srv.mqtt_bind)
    tls = f"; TLS, CA {srv.tls.ca_file}" if srv.tls else ""
    return (f" (embedded, listening on {srv.mqtt_bind}:{port}: {where}{tls}; closed: PCs join with "
            f"`bbt enrol-token --school S`)")


@main.group()
def agent() -> None:
    """The classroom agent."""


@agent.command("run")
@click.option("--config", "config_path", default=None, help="agent INI file")
@click.option("--broker", default=None)
@click.option("--school", default=None)
@click.option("--device", default=None)
@click.option("--enrol-secret", default=None, help="the school's enrolment secret (bbt enrol-token): enrol once")
@click.option("--enrol-url", default=None, help="the server's dashboard address (default http://BROKER-HOST:8080)")
def agent_run(config_path: Optional[str], broker: Optional[str], school: Optional[str],
              device: Optional[str], enrol_secret: Optional[str], enrol_url: Optional[str]) -> None:
    """Run the agent in the foreground."""
    from agent.service import run_foreground

    code = run_foreground(config_path, {"broker": broker, "school": school, "device": device,
                                        "enrol_secret": enrol_secret, "enrol_url": enrol_url},
                          logging.getLogger().isEnabledFor(logging.DEBUG))
    if code:
        sys.exit(code)


@main.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--school", default=None, help="the school's id (required, except for `import template`)")
@click.option("--replace", is_flag=True, help="replace all of the school's data of this kind (devices: imported "
              "devices missing from the file lose their class; timetable: classes the file leaves out go)")
@click.option("--dry-run", is_flag=True, help="show what would change, write nothing")
@click.option("--create-school", is_flag=True, help="create the school if the store does not know it")
@click.option("--out", default=None, help="`import template KIND`: write the template here")
@db_option
def import_(kind: str, file: str, school: Optional[str], replace: bool, dry_run: bool, create_school: bool,
            out: Optional[str], db_url: Optional[str]) -> None:
    """Import school data (devices, bell, timetable, substitutions, calendar) from CSV, XLSX or XLS.

    Prints what changes (+ added, - removed, ~ changed) and applies it. `bbt import template KIND
    [--out FILE]` writes an XLSX template for KIND instead.
    """
    if kind == "template":
        from bbt.cli_imports import write_template

        write_template(file, out)
        return
    if not school:
        raise click.UsageError("Missing option '--school'.")
    from bbt.cli_imports import run

    run(open_db(db_url), kind, file, school, replace=replace, dry_run=dry_run, create_school=create_school)


@main.group()
def user() -> None:
    """Dashboard users."""


@user.command("add")
@click.argument("name")
@click.option("--role", required=True)
@click.option("--school", default=None)
@click.option("--class", "klass", default=None)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@db_option
def user_add(name: str, role: str, school: Optional[str], klass: Optional[str], password_stdin: bool,
             db_url: Optional[str]) -> None:
    """Add a user (roles: admin, headteacher, class_teacher, teacher, maintainer, bureau).

    bureau (区县教育局) sees every school, read-only, and takes no --school.
    """
    from dashboard.users import add_user

    if not password_stdin:
        raise click.UsageError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    add_user(open_db(db_url), name, role, password, school, klass)
    click.echo(f"user {name} added ({role})")


@user.command("unlock")
@click.argument("name")
@db_option
def user_unlock(name: str, db_url: Optional[str]) -> None:
    """Lift the login throttling of a user after failed logins (audited)."""
    from collector.audit import actor
    from dashboard import audit, throttle
    from dashboard.users import get_user

    db = open_db(db_url)
    if get_user(db, name) is None:
        raise click.ClickException(f"没有用户 {name} / no user {name!r}")
    who = "cli:" + actor()
    n = throttle.unlock(db, name, who)
    audit.record(db, who, "user.unlock", None, name, None, forgiven=n)
    click.echo(f"已解除 {name} 的登录限制（{n} 次失败不再计算）/ login throttling of {name} lifted "
               f"({n} failed logins forgiven)")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--user", "name", required=True)
@db_option
def token_create(name: str, db_url: Optional[str]) -> None:
    """Print a new API token for a user (alone on the last line)."""
    from dashboard.users import create_token

    click.echo(create_token(open_db(db_url), name))


@main.command()
@click.option("--http", default="127.0.0.1:8080", show_default=True)
@click.option("--mqtt-port", default=1883, show_default=True)
@click.option("--data-dir", default=None, help="where the demo keeps its files (default: ./bbt-demo)")
@click.option("--duration", default=0.0, help="stop after this many seconds (0: until Ctrl-C)")
def demo(http: str, mqtt_port: int, data_dir: Optional[str], duration: float) -> None:
    """The demo school, end to end: its past school days stored, today live on the real clock."""
    from bbt.demo_run import run_demo

    host, port = parse_hostport(http)
    run_demo(data_dir or os.path.join(os.getcwd(), "bbt-demo"), host, port, mqtt_port, duration)


AGENT_SIDE = ("bbt.cli_agent",)  # what a classroom PC (Python 3.8+) needs; the rest is server-side (3.11+)


def _load_extensions() -> None:
    for name in EXTENSIONS:
        try:
            module = importlib.import_module(name)
        except (ImportError, SyntaxError):
            if sys.version_info < (3, 11) and name not in AGENT_SIDE:
                continue  # a classroom PC on Python 3.8: server commands are not available there
            raise
        module.register(main)


_load_extensions()
