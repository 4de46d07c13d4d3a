"""The embedded broker's locks (amqtt plugins): who may connect and what each client may do.

- :class:`AuthPlugin`: no anonymous client. A PC connects as its device id (username = client id)
  with the password enrolment gave it, not revoked, its Last Will only on its own status topic; the
  collector connects with its own account. Password checks run off the broker's event loop.
- :class:`TopicPlugin`: a PC publishes only its own status/events/cmd/ack and subscribes to and
  receives only its own cmd and its school's policy (collector.intake.credentials.device_may); the
  collector may do anything.
- :meth:`Authority.watch` cuts the connection of a PC that was revoked (or reset) while connected.

The plugins find their :class:`Authority` (the store) by the name given in the broker's config.
:class:`ClosedBroker` checks the password before amqtt touches any session: amqtt alone would let a
refused CONNECT that uses an online PC's client id take that session over (dropping the PC and
publishing the refused client's Last Will, on any topic) or wipe it.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import MQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.utils import gen_client_id

import protocol
from collector.db import Database, connect
from collector.intake import credentials
from collector.intake.broker_durable import DurableHandler, forward_accepted

log = logging.getLogger(__name__)

AUTHORITIES: dict[str, Authority] = {}
WATCH_S = 2.0


@dataclass(frozen=True)
class Role:
    kind: str  # "collector" or "device"
    school: str = ""
    device: str = ""


class Authority:
    """The store's view of the broker's accounts, used from the broker's worker threads."""

    def __init__(self, db_url: str | None) -> None:
        self.db_url = db_url
        self._local = threading.local()
        self._verified: dict[tuple[str, str], bytes] = {}  # (device, hash) -> sha256(password) seen good
        self._lock = threading.Lock()

    def db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = connect(self.db_url)
        return db

    def check(self, username: str | None, password: str | None, client_id: str | None,
              will_topic: str | None) -> Role | None:
        """The client's role, or None when it may not connect."""
        if not username or password is None:
            return None
        if username == credentials.COLLECTOR_USER:
            good = credentials.collector_password(self.db())
            return Role("collector") if hmac.compare_digest(good.encode(), password.encode()) else None
        if client_id != username or not protocol.valid_id(username):
            return None
        row = credentials.get(self.db(), username)
        if row is None or row["revoked"] is not None:
            return None
        if will_topic is not None and will_topic != protocol.status_topic(row["school"], username):
            return None
        if not self._password_ok(username, str(row["secret_hash"]), password):
            return None
        return Role("device", str(row["school"]), username)

    def _password_ok(self, device: str, secret_hash: str, password: str) -> bool:
        digest = hashlib.sha256(password.encode()).digest()
        key = (device, secret_hash)
        with self._lock:
            seen = self._verified.get(key)
        if seen is not None:
            return hmac.compare_digest(seen, digest)
        if not credentials.verify_secret(secret_hash, password):
            return False
        with self._lock:
            self._verified[key] = digest
        return True

    def active_devices(self) -> set[str]:
        rows = self.db().query("SELECT device FROM device_credentials WHERE revoked IS NULL")
        return {r["device"] for r in rows}

    async def watch(self, broker: Any, stop: asyncio.Event) -> None:
        """Every WATCH_S: drop the connection of every connected PC whose credentials are gone."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), WATCH_S)
            except TimeoutError:
                pass
            if stop.is_set():
                return
            try:
                active = await loop.run_in_executor(None, self.active_devices)
                await cut_off(broker, active)
            except Exception:
                log.exception("checking revoked devices failed")


async def cut_off(broker: Any, active: set[str]) -> list[str]:
    """Close the connections of device sessions not in ``active``; returns their ids."""
    cut = []
    for client_id, (session, handler) in list(broker.sessions.items()):
        role = getattr(session, "bbt_role", None)
        if role is None or role.kind != "device" or role.device in active:
            continue
        session.bbt_role = None  # from now on it may do nothing, even before the socket closes
        if session.transitions.is_connected() and handler is not None:
            log.warning("device %s/%s was revoked: its connection is closed", role.school, role.device)
            await handler.handle_connection_closed()
            cut.append(client_id)
    return cut


class AuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        authority: str = ""

    async def authenticate(self, *, session: Any) -> bool | None:
        authority = AUTHORITIES.get(self.config.authority)
        if authority is None or session is None:
            return False
        will = session.will_topic if session.will_flag else None
        role = await asyncio.get_running_loop().run_in_executor(
            None, authority.check, session.username, session.password, session.client_id, will)
        session.bbt_role = role
        if role is None:
            log.info("broker refused a connection (client id %r, user %r)", str(session.client_id)[:64],
                     str(session.username)[:64])
        return role is not None


class TopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        authority: str = ""

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None,
                              action: Any = None) -> bool | None:
        role = getattr(session, "bbt_role", None)
        if role is None or not topic:
            return False
        if role.kind == "collector":
            return True
        return credentials.device_may(str(action), role.school, role.device, topic)


class ClosedBroker(Broker):
    """amqtt's Broker with the credentials checked right after the CONNECT is read, before the client id
    is looked up among the sessions (the rest is amqtt's own ``_initialize_client_session``), and QoS 1
    kept (collector.intake.broker_durable)."""

    async def _client_message_loop(self, client_session: Any, handler: Any) -> None:
        try:
            await super()._client_message_loop(client_session, handler)
        finally:
            await forward_accepted(self, client_session, handler)

    async def _initialize_client_session(self, reader: Any, writer: Any, remote_address: str,
                                         remote_port: int) -> tuple[Any, Any]:
        try:
            handler, session = await DurableHandler.init_from_connect(reader, writer, self.plugins_manager)
        except MQTTError:
            await writer.close()
            raise
        if not await self._authenticate(session, None):  # type: ignore[arg-type]
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"not authorized: client id {str(session.client_id)[:64]!r} from {remote_address}")
        role = session.bbt_role
        if session.clean_session:
            if session.client_id:
                await self._delete_session(session.client_id)
            else:
                session.client_id = gen_client_id()
            session.parent = 0
        elif session.client_id in self._sessions:
            existing, _ = self._sessions[session.client_id]
            for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain", "keep_alive",
                         "username", "password"):
                setattr(existing, name, getattr(session, name))
            session = existing
            session.bbt_role = role
            session.parent = 1
        else:
            session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session
