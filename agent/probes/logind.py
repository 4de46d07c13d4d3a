"""systemd-logind's sessions and their properties: over D-Bus when it can, else through ``loginctl``.

The in-use check asks logind for the active desktop session's IdleHint twice a minute (the agent as a
service) or every 10 s (the session helper on a Wayland desktop). Running ``loginctl`` for that starts a
process each time: 5.7 ms of CPU on the benchmark machine, more than the rest of the agent's work in a
minute (bench/results/agent_footprint.md). :class:`DbusLogind` keeps one connection to the system bus
(jeepney, pure Python) and asks there, a small message and its reply per property: 0.5 ms for both.
:class:`LoginctlLogind` is the fallback where jeepney or the bus is missing. Both give values as
``loginctl show-session`` prints them ("yes"/"no", numbers as text), so
:class:`agent.probes.idle.LogindIdleSource` reads either.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional

from agent.probes import run_command

log = logging.getLogger(__name__)

LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
TIMEOUT_S = 2.0


class Logind:
    """The OS boundary: logind's sessions and their properties."""

    def sessions(self) -> List[str]:
        """Session ids."""
        return []

    def props(self, sid: str, *names: str) -> Dict[str, str]:
        """Properties of one session as loginctl prints them; empty when the session is gone."""
        return {}


class LoginctlLogind(Logind):
    """``loginctl`` (a process per question)."""

    def __init__(self, run: Optional[Callable[[List[str]], str]] = None) -> None:
        self.run = run or run_command

    def sessions(self) -> List[str]:
        out = []
        for line in self.run(["loginctl", "list-sessions", "--no-legend"]).splitlines():
            parts = line.split()
            if parts:
                out.append(parts[0])
        return out

    def props(self, sid: str, *names: str) -> Dict[str, str]:
        args = ["loginctl", "show-session", sid]
        for n in names:
            args += ["-p", n]
        return dict(line.split("=", 1) for line in self.run(args).splitlines() if "=" in line)


def _text(value: Any) -> str:
    """A D-Bus value as loginctl prints it (User and Seat are structs (id, path): loginctl prints the id)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (tuple, list)) and value:
        return str(value[0])
    return str(value)


def active_graphical_session(logind: Logind) -> Optional[str]:
    """The id of the active graphical (x11, wayland, mir) user session, if any."""
    for sid in logind.sessions():
        props = logind.props(sid, "Type", "Active", "Class")
        if props.get("Active") == "yes" and props.get("Type") in ("x11", "wayland", "mir") \
                and props.get("Class", "user") == "user":
            return sid
    return None


class DbusLogind(Logind):
    """logind on the system bus through one kept connection (jeepney); reconnects when it drops."""

    def __init__(self, bus: str = "SYSTEM") -> None:
        self.bus = bus
        self._conn: Any = None
        self._paths: Dict[str, str] = {}
        self._connect()  # raises when there is no bus: the caller falls back to loginctl

    def _connect(self) -> Any:
        if self._conn is None:
            from jeepney.io.blocking import open_dbus_connection

            self._conn = open_dbus_connection(bus=self.bus)
        return self._conn

    def _call(self, msg: Any) -> Any:
        """The reply's body; raises on a D-Bus error reply; drops the connection when it failed."""
        from jeepney.wrappers import unwrap_msg

        try:
            reply = self._connect().send_and_get_reply(msg, timeout=TIMEOUT_S)
        except (OSError, TimeoutError, EOFError) as e:
            log.debug("logind over D-Bus: %s", e)
            self.close()
            raise OSError("system bus: %s" % e) from e
        return unwrap_msg(reply)

    def sessions(self) -> List[str]:
        from jeepney import DBusAddress, DBusErrorResponse, new_method_call

        mgr = DBusAddress(MANAGER_PATH, bus_name=LOGIN1, interface=LOGIN1 + ".Manager")
        try:
            body = self._call(new_method_call(mgr, "ListSessions"))
        except (OSError, DBusErrorResponse):
            return []
        self._paths = {str(s[0]): str(s[4]) for s in body[0]}  # (id, uid, user, seat, object path)
        return list(self._paths)

    def props(self, sid: str, *names: str) -> Dict[str, str]:
        from jeepney import DBusAddress, DBusErrorResponse, Properties

        path = self._paths.get(sid)
        if path is None and sid in self.sessions():
            path = self._paths.get(sid)
        if path is None:
            return {}
        obj = Properties(DBusAddress(path, bus_name=LOGIN1, interface=LOGIN1 + ".Session"))
        out: Dict[str, str] = {}
        try:
            for name in names:
                out[name] = _text(self._call(obj.get(name))[0][1])  # a variant: (signature, value)
        except (OSError, DBusErrorResponse):  # the session ended (no such object), or the bus went away
            self._paths.pop(sid, None)
            return {}
        return out

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None


SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"  # where jeepney (and libdbus) look without the variable


def default_logind() -> Logind:
    """D-Bus when jeepney and the system bus are there, else loginctl (jeepney is not even loaded
    when there is no bus: a PC without one spends no memory on it)."""
    if not os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") and not os.path.exists(SYSTEM_BUS_SOCKET):
        log.info("no system bus: logind is asked through loginctl")
        return LoginctlLogind()
    try:
        return DbusLogind()
    except ImportError:
        log.info("jeepney is not installed: logind is asked through loginctl")
    except Exception as e:  # no system bus, refused, authentication failed
        log.info("system bus unavailable (%s): logind is asked through loginctl", e)
    return LoginctlLogind()
