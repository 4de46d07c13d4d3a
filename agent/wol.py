"""Wake-on-LAN: the magic packet a peer agent sends for the collector (docs/commands.md, kind ``wake``).

Broadcasts do not cross routers, so the collector asks an agent on the target's own subnet to send
it: 6 bytes of 0xFF then the target's MAC 16 times, one UDP datagram per MAC to the subnet's
broadcast address (port 9 by default).
"""
from __future__ import annotations

import socket
from typing import Any, Callable, List

DEFAULT_PORT = 9


def magic_packet(mac: str) -> bytes:
    """6 x FF followed by 16 x the MAC address (``aa:bb:cc:dd:ee:ff``; ``-`` also accepted)."""
    raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError("not a MAC address: %r" % mac)
    return b"\xff" * 6 + raw * 16


def send_magic(macs: List[str], broadcast: str, port: int = DEFAULT_PORT,
               make_socket: Callable[[], Any] = lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) -> int:
    """Send one magic packet per MAC to ``broadcast``:``port``; returns the number sent."""
    packets = [magic_packet(m) for m in macs]  # all or nothing: a bad MAC sends none
    with make_socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for p in packets:
            s.sendto(p, (broadcast, int(port)))
    return len(packets)
