"""``python -m agent`` (the frozen ``bbt-agent.exe``): the agent alone, without click or server code —
what the service runs. Options as for ``bbt agent run``:

    python -m agent [--config FILE] [--broker URL] [--school S] [--device D] [--enrol-secret X]
                    [--enrol-url URL] [-v]
    python -m agent helper [--data-dir DIR] [--interval S]     (the user-session helper)
    python -m agent install [--config FILE] | uninstall         (service: systemd unit / Windows service)
    python -m agent service ...                                 (Windows: the service host, pywin32)
"""
from __future__ import annotations

import getopt
import sys
from typing import Dict, List, Optional

USAGE = __doc__ or ""


def use_version_dir() -> None:
    """Started by the self-update supervisor with BBT_AGENT_VERSION_DIR: that version's modules come
    first, ahead of the installed ones (the frozen exe's own importer too, which ignores PYTHONPATH).
    Must run before any agent module is imported (agent/selfupdate.py)."""
    import os

    folder = os.environ.get("BBT_AGENT_VERSION_DIR") or ""
    if not folder:
        return
    from importlib.machinery import PathFinder

    class VersionFinder:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            if name.split(".")[0] not in ("agent", "protocol", "common", "bbt"):
                return None
            if "." not in name:
                return PathFinder.find_spec(name, [folder])
            parent = sys.modules.get(name.rpartition(".")[0])
            paths = [p for p in getattr(parent, "__path__", None) or [] if str(p).startswith(folder)]
            return PathFinder.find_spec(name, paths) if paths else None

    sys.meta_path.insert(0, VersionFinder)  # type: ignore[arg-type]


def main(argv: Optional[List[str]] = None) -> int:
    use_version_dir()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "helper":
        from agent.helper import main as helper_main

        return helper_main(args[1:])
    if args and args[0] in ("install", "uninstall"):
        return install_main(args[0], args[1:])
    if args and args[0] == "service":
        from agent.winservice import main as service_main

        return service_main(args[1:])
    try:  # getopt, not argparse: the agent stays small (see bench/results/agent_footprint.md)
        opts, rest = getopt.getopt(args, "hv", ["config=", "broker=", "school=", "device=", "enrol-secret=",
                                                "enrol-url=", "help", "verbose"])
    except getopt.GetoptError as e:
        print("bbt-agent: %s\n%s" % (e, USAGE), file=sys.stderr)
        return 2
    if rest or any(o in ("-h", "--help") for o, _ in opts):
        print(USAGE, file=sys.stderr if rest else sys.stdout)
        return 2 if rest else 0
    values: Dict[str, Optional[str]] = {k: None for k in ("config", "broker", "school", "device", "enrol_secret",
                                                          "enrol_url")}
    for o, v in opts:
        if o.startswith("--") and o[2:].replace("-", "_") in values:
            values[o[2:].replace("-", "_")] = v
    from agent.service import run_foreground
    from common.errors import BbtError

    config = values.pop("config")
    try:
        return run_foreground(config, dict(values), any(o in ("-v", "--verbose") for o, _ in opts))
    except BbtError as e:
        print("bbt-agent: %s" % e, file=sys.stderr)
        return 1


def install_main(what: str, argv: List[str]) -> int:
    """``bbt-agent.exe install --config C:\\ProgramData\\bbt\\agent.ini`` (silent; for GPO startup scripts)."""
    from agent.config import default_config_path, default_data_dir, load_config
    from agent.install import installer
    from common.errors import BbtError

    opts, _ = getopt.getopt(argv, "", ["config="])
    path = dict(opts).get("--config") or default_config_path()
    try:
        if what == "install":
            cfg = load_config(path)
            installer(path, cfg.data_dir).install()
            print("bbt-agent installed: school %s, device %s" % (cfg.school, cfg.device))
        else:
            installer(path, default_data_dir()).uninstall()
            print("bbt-agent uninstalled")
    except BbtError as e:
        print("bbt-agent: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
