"""The enrolment exchange's wire format, shared by the server (collector.intake.enrolment) and the agent
(agent.enrol). Python 3.8+.

Request (POST /api/v1/enrol, JSON): ``school``, ``device``, ``nonce`` (random, 16-128 chars) and
``proof`` = HMAC-SHA256(enrolment secret, :func:`request_text`). The answer (JSON) carries ``mac`` =
HMAC-SHA256(secret, :func:`answer_text`): the secret itself never travels, and only the server that
knows it can produce an answer the agent accepts.
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Dict

PATH = "/api/v1/enrol"


def request_text(school: str, device: str, nonce: str) -> bytes:
    return ("bbt-enrol-v1\n%s\n%s\n%s" % (school, device, nonce)).encode("utf-8")


def mac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def answer_text(answer: Dict[str, Any]) -> bytes:
    body = {k: v for k, v in answer.items() if k != "mac"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
