"""A small PJLink class 1 projector for the tests: TCP on 127.0.0.1 (a free port), optional password."""
from __future__ import annotations

import hashlib
import socketserver
import threading
from typing import Any


class FakeProjector:
    def __init__(self, password: str = "", power: str = "1", lamp_hours: int = 1234, erst: str = "000000",
                 inpt: str = "31", random: str = "498e4a67") -> None:
        self.password, self.random = password, random
        self.state = {"POWR": power, "LAMP": f"{lamp_hours} {1 if power == '1' else 0}", "ERST": erst, "INPT": inpt}
        self.received: list[str] = []  # every command line, digest included
        self.lock = threading.Lock()
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake._serve(self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeProjector:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set(self, **values: str) -> None:
        with self.lock:
            self.state.update(values)

    def _read(self, rfile: Any) -> str | None:
        raw = b""
        while not raw.endswith(b"\r"):
            c = rfile.read(1)
            if not c:
                return None
            raw += c
        return raw.decode("ascii")[:-1]

    def _serve(self, rfile: Any, wfile: Any) -> None:
        wfile.write(f"PJLINK 1 {self.random}\r".encode() if self.password else b"PJLINK 0\r")
        first = True
        while True:
            line = self._read(rfile)
            if line is None:
                return
            with self.lock:
                self.received.append(line)
            if first and self.password:
                digest = hashlib.md5((self.random + self.password).encode()).hexdigest()
                if not line.startswith(digest):
                    wfile.write(b"PJLINK ERRA\r")
                    return
                line = line[32:]
            first = False
            wfile.write(self._answer(line).encode() + b"\r")

    def _answer(self, line: str) -> str:
        if not line.startswith("%1") or " " not in line:
            return "%1" + line[2:6] + "=ERR2"
        cmd, param = line[2:].split(" ", 1)
        with self.lock:
            if cmd == "POWR" and param in ("0", "1"):
                self.state["POWR"] = param
                return "%1POWR=OK"
            if param != "?":
                return f"%1{cmd}=ERR2"
            if cmd not in self.state:
                return f"%1{cmd}=ERR1"
            return f"%1{cmd}={self.state[cmd]}"
