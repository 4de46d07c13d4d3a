"""logind over a real D-Bus: a private dbus-daemon and a stand-in for systemd-logind (the OS service this
machine does not run) answering the same methods and properties; the agent's side is the real client."""
from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from jeepney import HeaderFields, MessageType, new_error, new_method_return
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

from agent.probes import idle
from agent.probes.logind import DbusLogind, LoginctlLogind, default_logind

USER = "/org/freedesktop/login1/session/_33"
GREETER = "/org/freedesktop/login1/session/c1"


class FakeLogind:
    """org.freedesktop.login1 on the given bus: Manager.ListSessions and the sessions' properties."""

    def __init__(self, address: str) -> None:
        self.sessions: Dict[str, Dict[str, Any]] = {
            GREETER: {"Id": "c1", "Type": ("s", "x11"), "Active": ("b", False), "Class": ("s", "greeter")},
            USER: {"Id": "3", "Type": ("s", "wayland"), "Active": ("b", True), "Class": ("s", "user"),
                   "IdleHint": ("b", False), "IdleSinceHint": ("t", 0),
                   "User": ("(uo)", (1000, "/org/freedesktop/login1/user/_1000")), "Leader": ("u", 2345)},
        }
        self.calls: List[str] = []
        self.conn = open_dbus_connection(bus=address)
        self.conn.send_and_get_reply(message_bus.RequestName("org.freedesktop.login1"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.1)
            except TimeoutError:
                continue
            if msg.header.message_type != MessageType.method_call:
                continue
            member, path = msg.header.fields[HeaderFields.member], msg.header.fields[HeaderFields.path]
            self.calls.append(member)
            if member == "ListSessions":
                rows = [(s["Id"], 1000, "teacher", "seat0", p) for p, s in self.sessions.items()]
                self.conn.send(new_method_return(msg, "a(susso)", (rows,)))
            elif member == "Get" and path in self.sessions and msg.body[1] in self.sessions[path]:
                self.conn.send(new_method_return(msg, "v", (self.sessions[path][msg.body[1]],)))
            else:
                self.conn.send(new_error(msg, "org.freedesktop.DBus.Error.UnknownObject"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.conn.close()


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    daemon = shutil.which("dbus-daemon")
    assert daemon, "dbus-daemon is needed (scripts/bootstrap.sh installs it)"
    proc = subprocess.Popen([daemon, "--session", "--nofork", "--print-address",
                             "--address=unix:path=%s" % (tmp_path / "bus")], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    address = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    yield address
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def logind(bus: str) -> Iterator[FakeLogind]:
    service = FakeLogind(bus)
    yield service
    service.close()


def test_idle_time_comes_from_logind_over_dbus(bus: str, logind: FakeLogind) -> None:
    client = DbusLogind(bus)
    src = idle.LogindIdleSource(logind=client, wall=lambda: 1_800_000_000.0)
    assert src.idle_seconds() == 0.0  # the teacher's desktop session (not the login screen): not idle
    logind.sessions[USER]["IdleHint"] = ("b", True)
    logind.sessions[USER]["IdleSinceHint"] = ("t", (1_800_000_000 - 420) * 1_000_000)
    assert src.idle_seconds() == pytest.approx(420.0)
    assert logind.calls.count("ListSessions") == 1  # the active session is remembered between checks
    del logind.sessions[USER]  # logged out
    assert src.idle_seconds() is None
    assert src.idle_seconds() is None  # looked up again: only the login screen is left
    assert logind.calls.count("ListSessions") >= 2
    client.close()


def test_a_dropped_bus_connection_is_opened_again(bus: str, logind: FakeLogind) -> None:
    client = DbusLogind(bus)
    assert client.sessions() == ["c1", "3"]
    client._conn.sock.close()  # the system bus restarted under the agent
    assert client.sessions() == []  # this question is lost, not the agent
    assert client.sessions() == ["c1", "3"]
    assert client.props("3", "Type", "Active") == {"Type": "wayland", "Active": "yes"}
    assert client.props("9", "Type") == {}  # no such session
    client.close()


def test_without_a_system_bus_logind_is_asked_through_loginctl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=%s" % (tmp_path / "no-bus"))
    assert isinstance(default_logind(), LoginctlLogind)


def test_the_session_user_and_leader_for_blocking_come_from_logind_over_dbus(bus: str, logind: FakeLogind) -> None:
    """Blocking ends only the active desktop session's user's programs (agent.probes.blockguard)."""
    from agent.probes.blockguard import LinuxSessions, Seat

    client = DbusLogind(bus)
    assert client.props("3", "User", "Leader") == {"User": "1000", "Leader": "2345"}  # as loginctl prints them
    assert LinuxSessions(client).seat() == Seat(1000, None, frozenset([2345]))
    logind.sessions[USER]["Active"] = ("b", False)  # switched to the login screen: nobody's programs are ended
    assert LinuxSessions(client).seat() is None
    client.close()
