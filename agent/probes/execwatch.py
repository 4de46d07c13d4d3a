"""Linux: which processes started a program since we last asked, from the kernel's process events.

The program scan runs every 10 s and has to notice a new program within 15 s. Listing /proc
every time costs far more than the rest of the agent's work on a PC where nothing new has
started (bench/results/agent_footprint.md). The kernel's process-events connector (netlink,
``NETLINK_CONNECTOR`` / ``CN_IDX_PROC``) announces every ``exec``; a socket filter drops every
other event in the kernel, and the socket is read without blocking on each scan, so the
events wait in the socket until then and no thread wakes for them. Each scan then costs one
``recv`` when nothing started.

Needs CAP_NET_ADMIN (the agent's service runs as root) and the host's network namespace: the
watcher proves itself at start by catching the ``exec`` of a short-lived child process, and is
not used when it cannot (the scan lists /proc instead). When the socket's buffer overflowed
(``ENOBUFS``: too many events between two scans), :meth:`ExecWatcher.started` answers None and
the caller lists /proc. Only process ids are read from the events: no command lines.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import shutil
import socket
import struct
import subprocess
import sys
import time
from typing import List, Optional

log = logging.getLogger(__name__)

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
NLMSG_DONE = 3
PROC_EVENT_EXEC = 0x00000002
SO_ATTACH_FILTER = 26
HEADERS = 16 + 20  # struct nlmsghdr + struct cn_msg
WHAT_AT = HEADERS  # struct proc_event: what (u32), cpu (u32), timestamp_ns (u64), then the event
PID_AT = HEADERS + 16  # exec: process_pid (u32), process_tgid (u32)
EVENT_SIZE = PID_AT + 8


def _exec_only_filter() -> bytes:
    """A classic BPF program keeping only PROC_EVENT_EXEC messages. BPF loads words big-endian,
    the kernel writes ``what`` in host order: compare against its bytes read big-endian."""
    what = struct.unpack("!I", struct.pack("=I", PROC_EVENT_EXEC))[0]
    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    prog = [(ld_w_abs, 0, 0, WHAT_AT), (jeq_k, 0, 1, what), (ret_k, 0, 0, 0xFFFFFFFF), (ret_k, 0, 0, 0)]
    return b"".join(struct.pack("=HBBI", *ins) for ins in prog)


def parse_exec(data: bytes) -> List[int]:
    """Process ids (thread group ids) of the exec events in one datagram."""
    out: List[int] = []
    off = 0
    while off + EVENT_SIZE <= len(data):
        length = struct.unpack_from("=I", data, off)[0]
        if length < EVENT_SIZE:
            break
        if struct.unpack_from("=I", data, off + WHAT_AT)[0] == PROC_EVENT_EXEC:
            out.append(struct.unpack_from("=I", data, off + PID_AT + 4)[0])
        off += (length + 3) & ~3  # NLMSG_ALIGN
    return out


class ExecWatcher:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            prog = _exec_only_filter()
            buf = ctypes.create_string_buffer(prog)
            fprog = struct.pack("@HP", len(prog) // 8, ctypes.addressof(buf))
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
            self.sock.bind((0, CN_IDX_PROC))
            listen = struct.pack("=IIIIHHI", CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0, PROC_CN_MCAST_LISTEN)
            self.sock.send(struct.pack("=IHHII", 16 + len(listen), NLMSG_DONE, 0, 0, 0) + listen)
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise

    def started(self) -> Optional[List[int]]:
        """Process ids that started a program since the last call; None if events were lost."""
        pids: List[int] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return pids
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # overflowed: the caller looks at everything
                    self.started()  # what is queued after the overflow is covered by that look
                    return None
                raise
            pids += parse_exec(data)

    def close(self) -> None:
        self.sock.close()

    def __del__(self) -> None:  # a watcher dropped without close() must not leak its socket
        sock = getattr(self, "sock", None)
        if sock is not None:
            sock.close()


def open_watcher(proof_timeout: float = 2.0) -> Optional[ExecWatcher]:
    """An ExecWatcher that has been seen to work, or None (not Linux, no permission, not the
    host's network namespace)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        w = ExecWatcher()
    except (OSError, AttributeError, ValueError) as e:
        log.info("process events unavailable (%s): the program scan lists /proc", e)
        return None
    try:
        # /bin/true, not sys.executable: a frozen agent's executable is the agent itself
        child = subprocess.Popen([shutil.which("true") or "/bin/true"], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child.wait(10)
        deadline = time.monotonic() + proof_timeout
        while time.monotonic() < deadline:
            got = w.started()
            if got is None or child.pid in got:
                log.info("program scan: watching the kernel's process events")
                w.started()  # start clean
                return w
            time.sleep(0.02)
    except (OSError, subprocess.SubprocessError) as e:
        log.info("process events could not be proven (%s)", e)
    log.info("no process events arrived: the program scan lists /proc")
    w.close()
    return None

