"""Running the agent: in the foreground (signals) or under a service manager."""
from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Dict, Optional

log = logging.getLogger("agent")


def setup_logging(verbose: bool, log_file: str = "") -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("apscheduler",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if log_file:
        from logging.handlers import RotatingFileHandler

        h = RotatingFileHandler(log_file, maxBytes=1 << 20, backupCount=3, encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)


def run_until(stop: threading.Event, config_path: Optional[str], overrides: Dict[str, Any],
              verbose: bool = False) -> bool:
    """Load the config, run the agent until ``stop`` is set, stop it cleanly. True when it stopped to
    restart into an update it installed (agent.selfupdate)."""
    from agent.config import load_config

    cfg = load_config(config_path, overrides)
    setup_logging(verbose, cfg.log_file)
    from agent.enrol import ensure
    from agent.runner import Agent

    if not ensure(cfg, stop) and stop.is_set():
        return False
    if not cfg.command_key:
        log.warning("no pinned command key (not enrolled, no command_key): policies and commands are not "
                    "verified, so this agent only reports: it blocks no program and shuts nothing down")
    restart = threading.Event()

    def on_update() -> None:
        restart.set()
        stop.set()
    a = Agent(cfg, on_update=on_update)
    a.start()
    log.info("bbt agent %s/%s -> %s", cfg.school, cfg.device, cfg.broker.split("@")[-1])
    stop.wait()
    a.stop()
    return restart.is_set()


def run(stop: threading.Event, config_path: Optional[str], overrides: Dict[str, Any], verbose: bool = False,
        runner: Any = None) -> int:
    """The agent's entry (foreground and Windows service alike): the installed package runs in this
    process until a self-update is in play; from then on this process only supervises the chosen
    version (agent.selfupdate.supervise). Returns the exit code."""
    import os

    from agent import selfupdate
    from agent.config import load_config

    child = os.environ.get(selfupdate.CHILD_ENV) == "1"
    cfg = load_config(config_path, overrides)
    versions = selfupdate.versions_of(cfg.data_dir)
    if child or not versions.active():
        if not run_until(stop, config_path, overrides, verbose):
            return 0
        if child:
            return selfupdate.RESTART_CODE  # our supervisor starts the new version
        stop.clear()  # the installed package installed an update: from now on, supervise
    setup_logging(verbose, cfg.log_file)
    runner = runner or selfupdate.Runner(selfupdate.child_argv(config_path, overrides, verbose), cfg.data_dir)
    return selfupdate.supervise(versions, runner, stop, float(cfg.update_health_s))


def run_foreground(config_path: Optional[str], overrides: Dict[str, Any], verbose: bool = False) -> int:
    """SIGTERM (systemd stop, OS shutdown) and Ctrl-C stop the agent cleanly (power "off")."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if hasattr(signal, "SIGBREAK"):  # Windows console close
        signal.signal(signal.SIGBREAK, lambda *_: done.set())
    return run(done, config_path, overrides, verbose)
