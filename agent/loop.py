"""The agent's one working thread: a select() over its sockets and deadlines.

Everything periodic or network-bound happens here: the MQTT session (paho driven through its
external-loop interface, so paho runs no thread of its own), the probes on their schedule
(:class:`agent.ticker.Ticker`), and probes the OS wakes (the kernel's process events). One
thread that sleeps until the earliest thing it has to do replaces three (paho's network loop, a
publisher, a ticker) that each woke on their own and handed work to each other. Measured on the
benchmark's virtual machine, that alone did not lower the agent's CPU: what a wake-up costs there is
mostly the first work done after an idle pause, whichever thread does it
(bench/results/agent_footprint.md).

Other threads (the command worker, a service stop) never touch the loop's objects: they hand
it a function with :meth:`Loop.call_soon`, which wakes it.
"""
from __future__ import annotations

import collections
import logging
import select
import socket
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

log = logging.getLogger(__name__)


class Source:
    """Something the loop waits for: a socket to read or write, a deadline, work at each wake-up."""

    def poll(self) -> Tuple[Any, Any, Optional[float]]:
        """What to wait for now: (a socket to read or None, a socket to write or None, a clock
        time to wake by or None)."""
        return None, None, None

    def on_read(self) -> None:
        """The read socket is readable."""

    def on_write(self) -> None:
        """The write socket is writable."""

    def on_time(self, now: float) -> None:
        """Called at every wake-up, after reads, writes and queued calls."""


class Loop:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sources: List[Source] = []
        self._calls: Deque[Callable[[], None]] = collections.deque()
        self._wake_r: Optional[socket.socket] = None  # a socket pair, made when the loop starts
        self._wake_w: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopped = False

    # -- from any thread ---------------------------------------------------------
    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the loop's thread at its next wake-up (which this causes)."""
        self._calls.append(fn)
        self.wake()

    def wake(self) -> None:
        if threading.current_thread() is self._thread or self._wake_w is None:
            return  # the loop is awake (or not running): it looks at its queue before sleeping again
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # woken already (the pair's buffer is full), or closed at the end

    # -- the thread ----------------------------------------------------------------
    def start(self, name: str = "bbt-agent-loop") -> None:
        self._open()
        self._thread = threading.Thread(target=self.run, name=name, daemon=True)
        self._thread.start()

    def _open(self) -> None:
        if self._wake_r is None:
            self._wake_r, self._wake_w = socket.socketpair()
            self._wake_r.setblocking(False)
            self._wake_w.setblocking(False)

    def stop(self) -> None:
        """End the loop after the current wake-up (call in the loop, or through call_soon)."""
        self._stopped = True

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the loop's thread to end; True when it has."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def close(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def run(self) -> None:
        self._open()
        if self._thread is None:
            self._thread = threading.current_thread()
        while not self._stopped:
            try:
                self.run_once()
            except Exception:  # the loop must outlive any bug in what it runs
                log.exception("agent loop")
                time.sleep(1.0)

    def run_once(self) -> None:
        """Wait for the first socket or deadline, then do what is due."""
        self._open()
        rmap: Dict[Any, Source] = {self._wake_r: Source()}
        wmap: Dict[Any, Source] = {}
        deadlines: List[float] = []
        for s in self.sources:
            r, w, d = s.poll()
            if r is not None:
                rmap[r] = s
            if w is not None:
                wmap[w] = s
            if d is not None:
                deadlines.append(d)
        timeout: Optional[float] = None
        if self._calls:
            timeout = 0.0  # queued while the loop was awake: run them now
        elif deadlines:
            timeout = max(0.0, min(deadlines) - self.clock())
        try:
            readable, writable, _ = select.select(list(rmap), list(wmap), [], timeout)
        except (OSError, ValueError) as e:  # a socket closed between building the lists and select
            log.debug("select: %s", e)
            readable, writable = [], []
        for sock in readable:
            if sock is self._wake_r:
                self._drain()
            else:
                _guard(rmap[sock].on_read)
        for sock in writable:
            _guard(wmap[sock].on_write)
        while self._calls:
            _guard(self._calls.popleft())
        now = self.clock()
        for s in self.sources:
            _guard(s.on_time, now)

    def _drain(self) -> None:
        assert self._wake_r is not None
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass


def _guard(fn: Callable[..., None], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("agent loop: %s failed", getattr(fn, "__qualname__", fn))
