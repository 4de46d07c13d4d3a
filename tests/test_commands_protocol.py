"""The command object (docs/commands.md): built, validated, rejected with a reason."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import protocol
from protocol import Rejected

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=timezone(timedelta(hours=8)))


def test_make_and_validate_round_trip() -> None:
    cmd = protocol.make_command("c-1", "shutdown", {"delay_s": 60}, T0, T0 + timedelta(hours=1))
    assert cmd == {"id": "c-1", "kind": "shutdown", "args": {"delay_s": 60},
                   "issued": "2026-11-23T09:30:00+08:00", "expires": "2026-11-23T10:30:00+08:00"}
    back = protocol.decode_command(protocol.dumps(cmd))
    assert back["_expires"] == T0 + timedelta(hours=1)
    assert not protocol.command_expired(back, T0)
    assert protocol.command_expired(back, T0 + timedelta(hours=2))


@pytest.mark.parametrize("over,needle", [
    ({"kind": "reboot"}, "kind"),
    ({"id": "bad id!"}, "id"),
    ({"kind": "message", "args": {}}, "args.text"),
    ({"kind": "message", "args": {"text": "x" * 501}}, "args.text"),
    ({"args": {"delay_s": -1}}, "delay_s"),
    ({"args": {"delay_s": True}}, "delay_s"),
    ({"args": []}, "args"),
    ({"expires": "2026-11-23T09:00:00+08:00"}, "expires"),
    ({"issued": "yesterday"}, "issued"),
])
def test_bad_commands_are_rejected_with_the_reason(over: dict, needle: str) -> None:
    cmd = {"id": "c-1", "kind": "shutdown", "args": {}, "issued": "2026-11-23T09:30:00+08:00",
           "expires": "2026-11-23T10:30:00+08:00"}
    cmd.update(over)
    with pytest.raises(Rejected) as e:
        protocol.validate_command(cmd)
    assert e.value.code == "bad_command" and needle in str(e.value)


@pytest.mark.parametrize("etype", [{}, [], {"a": 1}, 3, None])
def test_an_event_type_that_is_not_a_string_is_rejected_not_a_crash(etype: object) -> None:
    ev = {"id": "e1", "seq": 0, "type": etype, "ts": "2026-11-23T08:05:00+08:00", "data": {}}
    with pytest.raises(Rejected) as e:
        protocol.validate_event(ev, "pc-1")
    assert e.value.code == "unknown_type"
