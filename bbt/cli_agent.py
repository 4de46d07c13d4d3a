"""``bbt agent install`` / ``uninstall`` / ``helper`` (Python 3.8+: runs on the classroom PCs)."""
from __future__ import annotations

from typing import Any, Optional

import click


def register(main: Any) -> None:
    group = main.commands["agent"]

    @group.command("install")
    @click.option("--config", "config_path", default=None, help="agent INI file (default: the OS's usual place)")
    @click.option("--unit-dir", default="/etc/systemd/system", show_default=True, help="Linux: where the unit goes")
    @click.option("--autostart-dir", default="/etc/xdg/autostart", show_default=True,
                  help="Linux: where the session helper's autostart entry goes")
    @click.option("--no-start", is_flag=True, help="write the files only; do not enable or start the service")
    def install(config_path: Optional[str], unit_dir: str, autostart_dir: str, no_start: bool) -> None:
        """Install the agent as a service that starts at boot and restarts after a crash."""
        from agent.config import default_config_path, load_config
        from agent.install import installer

        path = config_path or default_config_path()
        cfg = load_config(path)
        done = installer(path, cfg.data_dir, unit_dir=unit_dir, autostart_dir=autostart_dir,
                         start=not no_start).install()
        click.echo("installed: %s (school %s, device %s)" % (", ".join(done), cfg.school, cfg.device))

    @group.command("uninstall")
    @click.option("--unit-dir", default="/etc/systemd/system", show_default=True)
    @click.option("--autostart-dir", default="/etc/xdg/autostart", show_default=True)
    @click.option("--no-start", is_flag=True, help="remove the files only; do not call systemctl")
    def uninstall(unit_dir: str, autostart_dir: str, no_start: bool) -> None:
        """Stop and remove the agent's service (its outbox and state stay in the data directory)."""
        from agent.config import default_data_dir
        from agent.install import installer

        installer("", default_data_dir(), unit_dir=unit_dir, autostart_dir=autostart_dir,
                  start=not no_start).uninstall()
        click.echo("uninstalled")

    @group.command("helper")
    @click.option("--data-dir", default=None, help="the agent's data directory")
    @click.option("--interval", default=10.0, show_default=True, help="seconds between writes")
    def helper(data_dir: Optional[str], interval: float) -> None:
        """The user-session helper: idle time and foreground program name for the service."""
        from agent.helper import main as helper_main

        args = ["--interval", str(interval)] + (["--data-dir", data_dir] if data_dir else [])
        helper_main(args)
