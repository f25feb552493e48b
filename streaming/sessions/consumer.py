"""The websocket consumer at /ws/stream/: authenticate, decode, route, reply."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from streaming.bus import audit
from streaming.conf import streaming_settings
from streaming.delivery.options import stream_options
from streaming.delivery.worker import get_worker
from streaming.server import daphne, lean
from streaming.server.writer import make_writer
from streaming.sessions import access, lifecycle, limits, pending, presence, subscriptions, tickets
from streaming.sessions.auth import AuthError, DatabaseUnavailable, Grant, cached_grant, verify_token
from streaming.sessions.connection import Connection, iso
from streaming.sessions.handshake import Handshake, HandshakeError
from streaming.sessions.ratelimit import TokenBucket
from streaming.sessions.subscriptions import drop_disallowed
from streaming.wire import messages
from streaming.wire import protocol as p
from streaming.wire.protocol import ClientMessage, ProtocolError

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

    # Handshake and authentication ------------------------------------------------------------

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
        writer = make_writer(self.base_send, self._overflow)
        self.conn = conn = Connection(writer, self._closed, shake.remote, shake.origin, shake.user_agent)
        await self.send({"type": "websocket.accept", "subprotocol": shake.subprotocol})
        daphne.adopt_frame_limit(conn.writer)
        lean.release_handshake(conn.writer, self.scope)
        daphne.chunk_timeout_sweep(conn.writer)
        if not lifecycle.admit_socket(self.worker, conn):
            return
        if shake.error:
            lifecycle.refuse(conn, p.CLOSE_UNAUTHENTICATED, shake.error)
        elif shake.token or shake.ticket:
            self._pending(True)
            await self._authenticate(shake.token, None, shake.ticket)
        elif lifecycle.admit_silent(self.worker, conn):
            # No token yet: it must say something soon, and authenticate within AUTH_TIMEOUT.
            self._pending(True)
            silent = min(streaming_settings.SILENT_SOCKET_TIMEOUT, streaming_settings.AUTH_TIMEOUT)
            self.auth_timer = asyncio.get_running_loop().call_later(silent, self._silent_timeout)

    def _pending(self, waiting: bool) -> None:
        """Count this socket among the worker's unauthenticated ones (until auth or disconnect)."""
        if waiting != self.pending_auth and self.conn is not None:
            self.pending_auth = waiting
            self.worker.pending(1 if waiting else -1)
            (pending.enter if waiting else pending.leave)(self.conn.remote)

    def _silent_timeout(self) -> None:
        conn = self.conn
        if conn is None or conn.grant is not None or conn.closing:
            return
        if conn.messages_in == 0:
            lifecycle.refuse(conn, p.CLOSE_UNAUTHENTICATED, "No token presented.")
            return
        rest = streaming_settings.AUTH_TIMEOUT - streaming_settings.SILENT_SOCKET_TIMEOUT
        self.auth_timer = asyncio.get_running_loop().call_later(max(0.0, rest), self._auth_timeout)

    def _auth_timeout(self) -> None:
        if self.conn is not None and self.conn.grant is None and not self.conn.closing:
            lifecycle.refuse(self.conn, p.CLOSE_UNAUTHENTICATED, "Authentication timed out.")

    async def _verify(
        self, token: str | None, ticket: str | None = None, msg_id: str | int | None = None
    ) -> Grant | None:
        assert self.conn is not None
        try:
            if ticket is not None:  # a reconnect: no database, unless its user changed meanwhile
                return await tickets.verify(ticket)
            assert token is not None
            # A cached grant needs no thread hop: connect storms with one token stay on the loop.
            return cached_grant(token) or await database_sync_to_async(verify_token)(token)
        except AuthError as refused:
            lifecycle.refuse(self.conn, refused.code, refused.reason, refused)
            return None
        except DatabaseUnavailable as away:
            if self.conn.grant is not None:  # a refresh: the session goes on with the token it has
                raise ProtocolError(p.INTERNAL_ERROR, away.reason, msg_id) from None
            lifecycle.unavailable(self.conn)
            return None

    async def _authenticate(
        self, token: str | None, msg_id: str | int | None, ticket: str | None = None
    ) -> None:
        conn = self.conn
        assert conn is not None
        grant = await self._verify(token, ticket)
        if grant is None or conn.closing:  # refused, or timed out while the database answered
            return
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        self._pending(False)
        await lifecycle.open_session(self.worker, conn, grant, msg_id)

    async def _refresh(self, token: str, msg_id: str | int | None) -> None:
        conn = self.conn
        assert conn is not None and conn.grant is not None
        grant = await self._verify(token, msg_id=msg_id)
        if grant is None:
            return
        if conn.owner != grant.principal.owner:
            raise ProtocolError(p.FORBIDDEN, "The new token belongs to someone else.", msg_id)
        conn.grant = grant
        limits.apply(conn)
        conn.watch_expiry(self.worker.deadlines)
        await drop_disallowed(self.worker, conn)
        services = access.allowed_services(grant.principal)
        ticket = conn.issue_ticket()
        conn.send_message(messages.authenticated(iso(grant.expires_at), services, msg_id, ticket))

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
            lifecycle.limit_close(conn, p.CLOSE_TOO_BIG, "Message too big.")
            return
        conn.messages_in += 1
        self.worker.count_message()
        allowed = conn.bucket.take()  # invalid frames are charged like valid ones
        try:
            msg = p.decode(text)
        except ProtocolError as exc:
            if allowed:
                self._reply_error(exc, invalid=True)
            else:
                self._rate_limited(exc.msg_id)
            return
        if not allowed:
            self._rate_limited(msg.id)
            return
        if msg.type == p.REQUEST and not conn.request_bucket.take():
            self._rate_limited(msg.id, conn.request_bucket)
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
        conn.send_message(messages.error(exc.code, exc.message, exc.msg_id))
        if invalid:
            conn.invalid_strikes += 1
            if conn.invalid_strikes >= streaming_settings.INVALID_MESSAGE_STRIKES:
                conn.close(p.CLOSE_PROTOCOL, "Too many invalid messages.")

    def _rate_limited(self, msg_id: str | int | None, bucket: TokenBucket | None = None) -> None:
        """Refuse one message (a request, when `bucket` is the request bucket); close on sustained abuse."""
        conn = self.conn
        assert conn is not None
        strikes = (bucket or conn.bucket).strikes
        if strikes >= streaming_settings.RATE_LIMIT_STRIKES:
            lifecycle.limit_close(conn, p.CLOSE_TOO_MANY, "Rate limit exceeded repeatedly.")
            return
        if strikes == 1:  # once per run of refusals: the audit log is not a per-message log
            audit.record(audit.Kind.LIMIT, **conn.audit_fields(), detail="Rate limited.")
        what = "requests" if bucket is conn.request_bucket else "messages"
        conn.send_message(messages.error(p.RATE_LIMITED, f"Too many {what}; slow down.", msg_id))

    def _audit_refusal(self, msg: ClientMessage, exc: ProtocolError) -> None:
        assert self.conn is not None
        if exc.code == p.FORBIDDEN:
            kind, detail = audit.Kind.DENIED, f"{msg.type} {msg.service}: {exc.message}"
        elif exc.code == p.TOO_MANY_SUBSCRIPTIONS:
            kind, detail = audit.Kind.LIMIT, f"subscribe {msg.service}: {exc.message}"
        else:
            return
        audit.record(kind, **self.conn.audit_fields(), detail=detail)

    async def _route(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None
        if msg.type == p.AUTH:
            if conn.grant is None:
                await self._authenticate(msg.token, msg.id, msg.ticket)
            elif msg.token is None:
                raise ProtocolError(
                    p.BAD_REQUEST, "A ticket only opens a connection; refresh with a token.", msg.id
                )
            else:
                await self._refresh(msg.token, msg.id)
            return
        if conn.grant is None:
            conn.close(p.CLOSE_UNAUTHENTICATED, "Authenticate first.")
            return
        await getattr(self, f"on_{msg.type}")(msg)

    async def on_ping(self, msg: ClientMessage) -> None:
        self._send(messages.pong(msg.id))

    async def on_pong(self, msg: ClientMessage) -> None:
        return None

    async def on_subscribe(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        try:
            service = access.resolve(conn.principal, msg.service, msg.id)
        except ProtocolError as refused:
            subscriptions.remember_refused(conn, msg, refused)
            raise
        key = await access.followable_key(conn.principal, service, msg.topic, msg.id)
        if key in conn.subscriptions:
            raise ProtocolError(p.BAD_REQUEST, f"Already subscribed to {key[0]}/{key[1]}.", msg.id)
        cap = int(limits.effective("MAX_SUBSCRIPTIONS", conn, service=service.name))
        if len(conn.subscriptions) >= cap:
            raise ProtocolError(p.TOO_MANY_SUBSCRIPTIONS, f"At most {cap} subscriptions.", msg.id)
        if msg.presence:
            presence.shared(service.name, msg.id)
        options = stream_options(service.name)
        delta = msg.delta if options.delta else None
        await subscriptions.join(
            self.worker, conn, key, msg.since, msg.id, latest=options.latest, delta=delta
        )
        await presence.follow(self.worker, conn, key, msg.presence)

    async def on_unsubscribe(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        key = access.subscribed_key(conn.principal, conn.subscriptions, msg)
        if key is None:
            raise ProtocolError(p.NOT_SUBSCRIBED, f"Not subscribed to {msg.service[:40]!r}.", msg.id)
        del conn.subscriptions[key]
        await self.worker.hub.unsubscribe(conn, key)
        self._send(messages.unsubscribed(key[0], key[1], msg.id))

    async def on_request(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None and msg.action is not None
        service = access.resolve(conn.principal, msg.service, msg.id)
        try:
            data = await service.request(conn.principal, msg.action, msg.data)
        except ProtocolError as exc:
            exc.msg_id = msg.id
            raise
        self._send(messages.response(service.name, msg.action, data, msg.id))

    async def on_presence(self, msg: ClientMessage) -> None:
        conn = self.conn
        assert conn is not None and msg.service is not None
        service = access.resolve(conn.principal, msg.service, msg.id)
        key = await access.followable_key(conn.principal, service, msg.topic, msg.id)
        self._send(await presence.answer(self.worker, key, msg.id))

    def _send(self, message: Any) -> None:
        assert self.conn is not None
        self.conn.send_message(message)

    # Closing ---------------------------------------------------------------------------------

    def _overflow(self) -> None:
        if self.conn is not None:
            audit.record(
                audit.Kind.LIMIT,
                **self.conn.audit_fields(),
                close_code=p.CLOSE_OVERLOADED,
                detail="Slow consumer: outbound buffer full.",
            )
            daphne.slow_reader_grace(self.conn.writer)
            self.conn.overflow()

    def _closed(self, code: int, reason: str) -> None:
        if self.conn is not None:
            self.conn.closed_with = (code, reason)
        logger.info("Closing websocket %s: %s %s", self.conn.session_id if self.conn else "-", code, reason)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.auth_timer is not None:
            self.auth_timer.cancel()
        conn = self.conn
        if conn is not None:
            self._pending(False)
            code = message.get("code", 1000)
            if code == p.CLOSE_SERVER_TOO_BIG:  # daphne's own frame limit
                audit.record(
                    audit.Kind.LIMIT,
                    **conn.audit_fields(),
                    close_code=p.CLOSE_SERVER_TOO_BIG,
                    detail="Message too big for the server.",
                )
            await lifecycle.close_session(self.worker, conn, code, message.get("reason") or "")
        raise StopConsumer()
