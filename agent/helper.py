"""The user-session helper: runs in the person's desktop session (Windows: started at logon from
the HKLM Run key; Linux: XDG autostart) where input idle time and the foreground program can be
seen, and writes them every few seconds to ``<data_dir>/session/session.json`` for the service:

    {"ts": <epoch>, "idle_s": 12.5, "foreground": "POWERPNT.EXE", "displays": 2}

Only these four values are written: no window titles, no keystrokes, no screen contents. (A Windows
service sees only session 0's virtual desktop, so the number of connected displays — monitor or
projector — is counted here too.)
"""
from __future__ import annotations

import getopt
import json
import os
import sys
import time
from typing import Callable, List, Optional

from agent.probes.idle import IdleSource, LogindIdleSource, WindowsIdleSource, X11IdleSource


def session_source() -> IdleSource:
    if sys.platform == "win32":
        return WindowsIdleSource()
    try:
        return X11IdleSource()
    except OSError:
        return LogindIdleSource()


def write_state(path: str, source: IdleSource, wall: Callable[[], float] = time.time,
                displays: Optional[Callable[[], Optional[int]]] = None) -> dict:
    state = {"ts": wall(), "idle_s": source.idle_seconds(), "foreground": source.foreground()}
    if displays is not None:
        state["displays"] = displays()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, ensure_ascii=False)
    os.replace(tmp, path)
    return state


def main(argv: Optional[List[str]] = None) -> int:
    from agent.config import default_data_dir

    opts, _ = getopt.getopt(list(argv or []), "", ["data-dir=", "interval=", "once"])
    o = dict(opts)
    folder = os.path.join(o.get("--data-dir") or os.environ.get("BBT_AGENT_DATA_DIR") or default_data_dir(),
                          "session")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "session.json")
    interval = float(o.get("--interval", "10"))
    source = session_source()
    counter = None
    if sys.platform == "win32":
        from agent.probes.faults import WindowsDisplaySource

        counter = WindowsDisplaySource().count
    while True:
        try:
            write_state(path, source, displays=counter)
        except OSError as e:
            print("bbt-agent helper: cannot write %s: %s" % (path, e), file=sys.stderr)
        if "--once" in o:
            return 0
        time.sleep(interval)
