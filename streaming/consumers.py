"""The websocket consumer at /ws/stream/: authenticate, decode, route, reply."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from streaming import access, audit, drain, limits, resume
from streaming import protocol as p
from streaming.auth import AuthError, Grant, cached_grant, verify_token
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
    pending_auth = False

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
            client = self.scope.get("client") or ("", 0)
            audit.record(
                audit.Kind.DENIED, remote=str(client[0]), origin=refused.origin, detail="Origin not allowed."
            )
            await self.send({"type": "websocket.close"})  # before accept: HTTP 403
            return
        self.conn = conn = Connection(
            make_writer(self.base_send, self._overflow),
            self._closed,
            shake.remote,
            shake.origin,
            shake.user_agent,
        )
        await self.send({"type": "websocket.accept", "subprotocol": shake.subprotocol})
        limits.adopt_server_frame_limit(conn.writer)
        if self.worker.draining:
            drain.hand_over(conn, "restart")
            return
        open_ = len(self.worker.connections) + self.worker.pending_auth
        if open_ >= conn.limits["MAX_CONNECTIONS_PER_WORKER"]:
            audit.record(audit.Kind.LIMIT, conn=conn, close_code=p.CLOSE_OVERLOADED, detail="Worker is full.")
            conn.close_with_retry(p.CLOSE_OVERLOADED, "overloaded", streaming_settings.OVERLOAD_RETRY_MS)
            return
        self._pending(True)
        if shake.error:
            self._refuse(p.CLOSE_UNAUTHENTICATED, shake.error)
        elif shake.token:
            await self._authenticate(shake.token, None)
        else:
            loop = asyncio.get_running_loop()
            self.auth_timer = loop.call_later(streaming_settings.AUTH_TIMEOUT, self._auth_timeout)

    def _pending(self, pending: bool) -> None:
        """Count this socket among the worker's unauthenticated ones (until auth or disconnect)."""
        if pending != self.pending_auth:
            self.pending_auth = pending
            self.worker.pending_auth += 1 if pending else -1

    def _auth_timeout(self) -> None:
        if self.conn is not None and self.conn.grant is None and not self.conn.closing:
            self._refuse(p.CLOSE_UNAUTHENTICATED, "Authentication timed out.")

    def _refuse(self, code: int, reason: str, refused: AuthError | None = None) -> None:
        """Close for an authentication or authorisation failure, and audit it."""
        assert self.conn is not None
        kind = audit.Kind.AUTH_FAILED if code == p.CLOSE_UNAUTHENTICATED else audit.Kind.DENIED
        audit.record(
            kind,
            conn=self.conn,
            close_code=code,
            detail=reason,
            user_id=refused.user_id if refused else None,
            application_id=refused.application_id if refused else None,
        )
        self.conn.close(code, reason)

    async def _verify(self, token: str) -> Grant | None:
        assert self.conn is not None
        try:
            # A cached grant needs no thread hop: connect storms with one token stay on the loop.
            return cached_grant(token) or await database_sync_to_async(verify_token)(token)
        except AuthError as refused:
            self._refuse(refused.code, refused.reason, refused)
            return None

    async def _authenticate(self, token: str, msg_id: str | int | None) -> None:
        conn = self.conn
        assert conn is not None
        grant = await self._verify(token)
        if grant is None or conn.closing:  # refused, or timed out while the database answered
            return
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        self._pending(False)
        conn.grant = grant
        limits.apply(conn)
        if not await limits.admit_user(self.worker, conn):
            self._limit_close(p.CLOSE_TOO_MANY, "Too many connections for this user.")
            conn.grant = None  # never a session: nothing to record or release at disconnect
            return
        self.worker.add(conn)
        audit.record(audit.Kind.CONNECT, conn=conn)
        reply: dict[str, Any] = {
            "type": p.WELCOME,
            "session": conn.session_id,
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
        max_bytes = conn.limits["MAX_FRAME_BYTES"]
        if len(text) > max_bytes // 4 and len(text.encode()) > max_bytes:
            self._limit_close(p.CLOSE_TOO_BIG, "Message too big.")
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
        try:
            await self._route(msg)
        except ProtocolError as exc:
            self._audit_refusal(msg, exc)
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
        strikes = conn.bucket.strikes
        if strikes >= streaming_settings.RATE_LIMIT_STRIKES:
            self._limit_close(p.CLOSE_TOO_MANY, "Rate limit exceeded repeatedly.")
            return
        if strikes == 1:  # once per run of refusals: the audit log is not a per-message log
            audit.record(audit.Kind.LIMIT, conn=conn, detail="Rate limited.")
        conn.send_message(p.error(p.RATE_LIMITED, "Too many messages; slow down.", msg.id))

    def _limit_close(self, code: int, reason: str) -> None:
        assert self.conn is not None
        audit.record(audit.Kind.LIMIT, conn=self.conn, close_code=code, detail=reason)
        self.conn.close(code, reason)

    def _audit_refusal(self, msg: ClientMessage, exc: ProtocolError) -> None:
        if exc.code == p.FORBIDDEN:
            audit.record(audit.Kind.DENIED, conn=self.conn, detail=f"{msg.type} {msg.service}: {exc.message}")
        elif exc.code == p.TOO_MANY_SUBSCRIPTIONS:
            audit.record(audit.Kind.LIMIT, conn=self.conn, detail=f"subscribe {msg.service}: {exc.message}")

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
        cap = int(limits.effective("MAX_SUBSCRIPTIONS", conn, service=service.name))
        if len(conn.subscriptions) >= cap:
            raise ProtocolError(p.TOO_MANY_SUBSCRIPTIONS, f"At most {cap} subscriptions.", msg.id)
        conn.subscriptions[key] = None
        since = msg.since
        replay, recovered = await self.worker.hub.subscribe(
            conn, key, since.epoch if since else None, since.seq if since else 0
        )
        if recovered and "resumed_from" not in conn.meta:
            conn.meta["resumed_from"] = await resume.previous_session(self.worker, conn.grant.checksum)
        if conn.closing or key not in conn.subscriptions:
            await self.worker.hub.unsubscribe(conn, key)
            return
        self._reply(
            {
                "type": p.SUBSCRIBED,
                "service": key[0],
                "topic": key[1],
                "epoch": replay.epoch,
                "seq": replay.seq,
                "recovered": recovered,
            },
            msg,
        )
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
        if conn.owner != grant.principal.owner:
            raise ProtocolError(p.FORBIDDEN, "The new token belongs to someone else.", msg_id)
        conn.grant = grant
        limits.apply(conn)
        self.worker.watch_expiry(conn)
        await drop_disallowed(self.worker, conn)
        self._reply(
            {
                "type": p.AUTHENTICATED,
                "expires_at": iso(grant.expires_at),
                "services": access.allowed_services(grant.principal),
            },
            ClientMessage(p.AUTH, msg_id),
        )

    def _reply(self, reply: dict[str, Any], msg: ClientMessage) -> None:
        assert self.conn is not None
        if msg.id is not None:
            reply["id"] = msg.id
        self.conn.send_message(reply)

    # Closing ---------------------------------------------------------------------------------

    def _overflow(self) -> None:
        if self.conn is not None:
            audit.record(
                audit.Kind.LIMIT,
                conn=self.conn,
                close_code=p.CLOSE_OVERLOADED,
                detail="Slow consumer: outbound buffer full.",
            )
            limits.slow_reader_grace(self.conn.writer)
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
            self._pending(False)
            if message.get("code") == p.CLOSE_SERVER_TOO_BIG:  # daphne's own frame limit
                audit.record(
                    audit.Kind.LIMIT,
                    conn=conn,
                    close_code=p.CLOSE_SERVER_TOO_BIG,
                    detail="Message too big for the server.",
                )
            conn.closing = True
            self.worker.remove(conn)
            if conn.grant is not None:
                gone = (message.get("code", 1000), message.get("reason") or "")
                code, reason = conn.meta.get("close", gone)
                self.worker.closed_sessions.append((conn, code, reason))
                audit.record(audit.Kind.DISCONNECT, conn=conn, close_code=code, detail=reason)
                await limits.release_user(self.worker, conn)
                await resume.remember_closed(self.worker, conn.grant.checksum, conn.session_id)
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
            audit.record(audit.Kind.DENIED, conn=conn, detail=f"unsubscribed {key[0]}: {exc.message}")
            conn.send_message({**p.error(exc.code, exc.message), "service": key[0], "topic": key[1]})
