"""A local HTTP receiver in the role of the WeCom / DingTalk group-bot webhooks.

It accepts the JSON that apprise posts to qyapi.weixin.qq.com (``/cgi-bin/webhook/send?key=``)
and oapi.dingtalk.com (``/robot/send?access_token=&timestamp=&sign=``), checks DingTalk's
signature like the real endpoint, and records every message with its arrival time.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse


@dataclass
class Received:
    t: float
    service: str
    key: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.body.get("text", {}).get("content") or self.body.get("message") or "")


class WebhookReceiver:
    def __init__(self, dingtalk_secrets: dict[str, str] | None = None) -> None:
        self.messages: list[Received] = []
        self.rejected: list[str] = []
        self.dingtalk_secrets = dingtalk_secrets or {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply = outer.handle(self.path, raw)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        u = urlparse(path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        body = json.loads(raw)
        if u.path == "/cgi-bin/webhook/send":
            if body.get("msgtype") != "text" or not body.get("text", {}).get("content"):
                return self._reject("wecom: bad payload")
            service, key = "wecom", q.get("key", "")
        elif u.path == "/robot/send":
            token = q.get("access_token", "")
            secret = self.dingtalk_secrets.get(token)
            if secret is not None and not self._dingtalk_sign_ok(secret, q):
                return self._reject("dingtalk: bad signature")
            service, key = "dingtalk", token
        else:
            service, key = "json", u.path
        with self.lock:
            self.messages.append(Received(time.time(), service, key, body))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _reject(self, why: str) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.rejected.append(why)
        return 400, {"errcode": 310000, "errmsg": why}

    @staticmethod
    def _dingtalk_sign_ok(secret: str, q: dict[str, str]) -> bool:
        ts = q.get("timestamp", "")
        if not ts or abs(time.time() * 1000 - int(ts)) > 3600_000:
            return False
        mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64encode(mac).decode(), unquote(q.get("sign", "")))

    def of(self, service: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.service == service]

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
