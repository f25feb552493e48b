"""The websocket consumer at /ws/stream/: authenticate, decode, route, reply."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from streaming import access
from streaming import protocol as p
from streaming.auth import AuthError, Grant, verify_token
from streaming.conf import streaming_settings
from streaming.connection import Connection, iso
from streaming.handshake import Handshake, HandshakeError
from streaming.protocol import ClientMessage, ProtocolError
from streaming.worker import get_worker
from streaming.writer import make_writer

logger = logging.getLogger(__name__)


class StreamConsumer(AsyncConsumer):
    """One per websocket. Fan-out does not pass through here: the hub writes to the connection."""

    channel_layer_alias = "streaming.none"  # no per-connection channel-layer reader

    conn: Connection | None = None
    auth_timer: asyncio.TimerHandle | None = None

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch closes old DB connections on every message (a thread hop each);
        # handlers that touch the database use database_sync_to_async, which does it itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    # Handshake -------------------------------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        self.worker = get_worker()
        try:
            shake = Handshake.parse(self.scope)
        except HandshakeError as refused:
            logger.info("Refused websocket handshake: %s", refused)
            await self.send({"type": "websocket.close"})  # before accept: HTTP 403
            return
        self.conn = Connection(make_writer(self.base_send, self._overflow), self._closed,
                               shake.remote, shake.origin, shake.user_agent)
        await self.send({"type": "websocket.accept", "subprotocol": shake.subprotocol})
        if self.worker.draining:
            self.conn.close_with_retry(p.CLOSE_RESTART, "restart", _jitter_ms())
            return
        if len(self.worker.connections) >= streaming_settings.MAX_CONNECTIONS_PER_WORKER:
            self.conn.close_with_retry(p.CLOSE_OVERLOADED, "overloaded", streaming_settings.OVERLOAD_RETRY_MS)
            return
        if shake.error:
            self.conn.close(p.CLOSE_UNAUTHENTICATED, shake.error)
        elif shake.token:
            await self._authenticate(shake.token, None)
        else:
            loop = asyncio.get_running_loop()
            self.auth_timer = loop.call_later(streaming_settings.AUTH_TIMEOUT, self._auth_timeout)

    def _auth_timeout(self) -> None:
        if self.conn is not None and self.conn.grant is None:
            self.conn.close(p.CLOSE_UNAUTHENTICATED, "Authentication timed out.")

    async def _verify(self, token: str) -> Grant | None:
        assert self.conn is not None
        try:
            return await database_sync_to_async(verify_token)(token)
        except AuthError as refused:
            self.conn.close(refused.code, refused.reason)
            return None

    async def _authenticate(self, token: str, msg_id: str | int | None) -> None:
        conn = self.conn
        assert conn is not None
        grant = await self._verify(token)
        if grant is None:
            return
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        user_id, app_id = grant.principal.user_id, grant.principal.application_id
        owner_id = (user_id, None if user_id is not None else app_id)
        open_ = sum(1 for c in self.worker.connections.values() if c.owner == owner_id)
        if open_ >= streaming_settings.MAX_CONNECTIONS_PER_USER:
            conn.close(p.CLOSE_TOO_MANY, "Too many connections for this user.")
            return
        conn.grant = grant
        self.worker.add(conn)
        reply: dict[str, Any] = {
            "type": p.WELCOME, "session": conn.session_id,
            "heartbeat": streaming_settings.HEARTBEAT_INTERVAL,
            "services": access.allowed_services(grant.principal),
            "expires_at": iso(grant.expires_at),
        }
        if msg_id is not None:
            reply["id"] = msg_id
        conn.send_message(reply)

    # Messages --------------------------------------------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn is None or conn.closing:
            return
        text = message.get("text")
        if text is None:
            conn.close(p.CLOSE_PROTOCOL, "Binary frames are not supported.")
            return
        if len(text) > streaming_settings.MAX_FRAME_BYTES // 4 and \
                len(text.encode()) > streaming_settings.MAX_FRAME_BYTES:
            conn.close(p.CLOSE_TOO_BIG, "Message too big.")
            return
        conn.messages_in += 1
        self.worker.messages_in += 1
        try:
            msg = p.decode(text)
        except ProtocolError as exc:
            self._reply_error(exc, invalid=True)
            return
        if not conn.bucket.take():
            self._rate_limited(msg)
            return
        conn.rate_strikes = 0
        try:
            await self._route(msg)
        except ProtocolError as exc:
            self._reply_error(exc, invalid=exc.code == p.BAD_REQUEST)
        except Exception:
            logger.exception("Failed to handle a %s message", msg.type)
            self._reply_error(ProtocolError(p.INTERNAL_ERROR, "Internal error.", msg.id))
        else:
            conn.invalid_strikes = 0

    def _reply_error(self, exc: ProtocolError, invalid: bool = False) -> None:
        conn = self.conn
        assert conn is not None
        conn.send_message(p.error(exc.code, exc.message, exc.msg_id))
        if invalid:
            conn.invalid_strikes += 1
            if conn.invalid_strikes >= streaming_settings.INVALID_MESSAGE_STRIKES:
                conn.close(p.CLOSE_PROTOCOL, "Too many invalid messages.")

    def _rate_limited(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None
        conn.rate_strikes += 1
        if conn.rate_strikes >= streaming_settings.RATE_LIMIT_STRIKES:
            conn.close(p.CLOSE_TOO_MANY, "Rate limit exceeded repeatedly.")
            return
        conn.send_message(p.error(p.RATE_LIMITED, "Too many messages; slow down.", msg.id))

    async def _route(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None
        if msg.type == p.AUTH:
            assert msg.token is not None
            if conn.grant is None:
                await self._authenticate(msg.token, msg.id)
            else:
                await self._refresh(msg.token, msg.id)
            return
        if conn.grant is None:
            conn.close(p.CLOSE_UNAUTHENTICATED, "Authenticate first.")
            return
        handler = getattr(self, f"on_{msg.type}")
        await handler(msg)

    async def on_ping(self, msg: ClientMessage) -> None:
        self._reply({"type": p.PONG}, msg)

    async def on_pong(self, msg: ClientMessage) -> None:
        return None

    async def on_subscribe(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        service = access.resolve(conn.principal, msg.service, msg.id)
        key = access.stream_key(conn.principal, service, msg.topic, msg.id)
        if key in conn.subscriptions:
            raise ProtocolError(p.BAD_REQUEST, f"Already subscribed to {key[0]}/{key[1]}.", msg.id)
        if len(conn.subscriptions) >= streaming_settings.MAX_SUBSCRIPTIONS:
            raise ProtocolError(p.TOO_MANY_SUBSCRIPTIONS,
                                f"At most {streaming_settings.MAX_SUBSCRIPTIONS} subscriptions.", msg.id)
        conn.subscriptions[key] = None
        since = msg.since
        replay, recovered = await self.worker.hub.subscribe(
            conn, key, since.epoch if since else None, since.seq if since else 0)
        if conn.closing or key not in conn.subscriptions:
            await self.worker.hub.unsubscribe(conn, key)
            return
        self._reply({"type": p.SUBSCRIBED, "service": key[0], "topic": key[1], "epoch": replay.epoch,
                     "seq": replay.seq, "recovered": recovered}, msg)
        self.worker.hub.finish_join(conn, key, replay)

    async def on_unsubscribe(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        key = self._subscribed_key(msg)
        if key is None:
            raise ProtocolError(p.NOT_SUBSCRIBED, f"Not subscribed to {msg.service[:40]!r}.", msg.id)
        del conn.subscriptions[key]
        await self.worker.hub.unsubscribe(conn, key)
        self._reply({"type": p.UNSUBSCRIBED, "service": key[0], "topic": key[1]}, msg)

    def _subscribed_key(self, msg: ClientMessage) -> tuple[str, str] | None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        service = access.services.get(msg.service)
        if service is None:
            return None
        try:
            key = access.stream_key(conn.principal, service, msg.topic, msg.id)
        except ProtocolError:
            return None
        return key if key in conn.subscriptions else None

    async def on_request(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None and msg.action is not None
        service = access.resolve(conn.principal, msg.service, msg.id)
        try:
            data = await service.request(conn.principal, msg.action, msg.data)
        except ProtocolError as exc:
            exc.msg_id = msg.id
            raise
        self._reply({"type": p.RESPONSE, "service": service.name, "action": msg.action, "data": data}, msg)

    async def _refresh(self, token: str, msg_id: str | int | None) -> None:
        conn = self.conn
        assert conn is not None and conn.grant is not None
        grant = await self._verify(token)
        if grant is None:
            return
        if conn.owner != (grant.principal.user_id,
                          None if grant.principal.user_id is not None else grant.principal.application_id):
            raise ProtocolError(p.FORBIDDEN, "The new token belongs to someone else.", msg_id)
        conn.grant = grant
        conn.warned = False
        self.worker.watch_expiry(conn)
        await drop_disallowed(self.worker, conn)
        self._reply({"type": p.AUTHENTICATED, "expires_at": iso(grant.expires_at),
                     "services": access.allowed_services(grant.principal)}, ClientMessage(p.AUTH, msg_id))

    def _reply(self, reply: dict[str, Any], msg: ClientMessage) -> None:
        assert self.conn is not None
        if msg.id is not None:
            reply["id"] = msg.id
        self.conn.send_message(reply)

    # Closing ---------------------------------------------------------------------------------

    def _overflow(self) -> None:
        if self.conn is not None:
            self.conn.overflow()

    def _closed(self, code: int, reason: str) -> None:
        if self.conn is not None:
            self.conn.meta["close"] = (code, reason)
        logger.info("Closing websocket %s: %s %s", self.conn.session_id if self.conn else "-", code, reason)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        conn = self.conn
        if conn is not None:
            conn.closing = True
            self.worker.remove(conn)
            if conn.grant is not None:
                gone = (message.get("code", 1000), message.get("reason") or "")
                code, reason = conn.meta.get("close", gone)
                self.worker.closed_sessions.append((conn, code, reason))
            for key in list(conn.subscriptions):
                await self.worker.hub.unsubscribe(conn, key)
            conn.subscriptions.clear()
            stop = getattr(conn.writer, "stop", None)
            if stop is not None:
                stop()
        raise StopConsumer()


async def drop_disallowed(worker: Any, conn: Connection) -> None:
    """Unsubscribe what the connection's current grant no longer allows, telling the client why."""
    for key in list(conn.subscriptions):
        try:
            access.resolve(conn.principal, key[0], None)
        except ProtocolError as exc:
            del conn.subscriptions[key]
            await worker.hub.unsubscribe(conn, key)
            conn.send_message({**p.error(exc.code, exc.message), "service": key[0], "topic": key[1]})


def _jitter_ms() -> int:
    import random

    return int(random.uniform(0.1, 1.0) * 1000)


__all__ = ["StreamConsumer", "drop_disallowed", "parse_qs"]
