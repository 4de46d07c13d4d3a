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
              verbose: bool = False) -> None:
    """Load the config, run the agent until ``stop`` is set, stop it cleanly."""
    from agent.config import load_config

    cfg = load_config(config_path, overrides)
    setup_logging(verbose, cfg.log_file)
    from agent.enrol import ensure
    from agent.runner import Agent

    if not ensure(cfg, stop) and stop.is_set():
        return
    if not cfg.command_key:
        log.warning("no pinned command key (not enrolled, no command_key): policies and commands are not "
                    "verified, so this agent only reports: it blocks no program and shuts nothing down")
    a = Agent(cfg)
    a.start()
    log.info("bbt agent %s/%s -> %s", cfg.school, cfg.device, cfg.broker.split("@")[-1])
    stop.wait()
    a.stop()


def run_foreground(config_path: Optional[str], overrides: Dict[str, Any], verbose: bool = False) -> None:
    """SIGTERM (systemd stop, OS shutdown) and Ctrl-C stop the agent cleanly (power "off")."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if hasattr(signal, "SIGBREAK"):  # Windows console close
        signal.signal(signal.SIGBREAK, lambda *_: done.set())
    run_until(done, config_path, overrides, verbose)
