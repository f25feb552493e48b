"""The SSE fallback: GET /sse/stream/ carries the websocket's services as server-sent events.

For browsers whose websocket cannot open (a proxy that refuses upgrades). Authentication is the
bearer header or a one-time ticket (`streaming.sessions.tickets`, POST /sse/ticket/); streams are
chosen by repeated `stream=<service>[/<topic>]` query parameters; resume is by Last-Event-ID (the
header, or `last_event_id=` for a new EventSource). A session here is a `Connection` like a
websocket's — the same limits, admin rows, drain (`event: reconnect`, then the response ends) and
close rules; events are always full frames (no deltas).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer

from streaming.conf import streaming_settings
from streaming.delivery.history import StreamKey
from streaming.delivery.worker import Worker, get_worker
from streaming.server.event_stream import EventStreamWriter, decode_positions
from streaming.sessions import access, lifecycle
from streaming.sessions.auth import AuthError, DatabaseUnavailable, Grant, cached_grant, verify_token
from streaming.sessions.connection import Connection
from streaming.sessions.handshake import Handshake, HandshakeError
from streaming.sessions.sse_tickets import ticket_issue, ticket_redeem
from streaming.wire import messages
from streaming.wire import protocol as p
from streaming.wire.protocol import ProtocolError

logger = logging.getLogger(__name__)

STATUS = {
    p.BAD_REQUEST: 400,
    p.UNAUTHENTICATED: 401,
    p.FORBIDDEN: 403,
    p.UNKNOWN_SERVICE: 404,
    p.METHOD_NOT_ALLOWED: 405,
    p.TOO_MANY_SUBSCRIPTIONS: 429,
    p.SERVICE_DISABLED: 403,
    p.UNAVAILABLE: 503,
}
EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass events through as they come
]
#: Seconds the last SSE events may take to leave before the session is closed anyway.
FLUSH_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """What a GET /sse/stream/ asks for."""

    streams: list[tuple[str, str | None]]
    ticket: str | None
    last_event_id: str

    @classmethod
    def parse(cls, scope: dict[str, Any]) -> StreamRequest:
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        streams = [_stream(value) for value in query.get("stream", [])]
        headers = dict(scope.get("headers", []))
        last = headers.get(b"last-event-id", b"").decode("latin1") or query.get("last_event_id", [""])[0]
        return cls(streams, query.get("ticket", [None])[0], last)


def _stream(value: str) -> tuple[str, str | None]:
    service, _, topic = value.partition("/")
    if not service or len(value) > p.MAX_NAME_LENGTH:
        raise ProtocolError(p.BAD_REQUEST, f"Bad stream {value[:40]!r}.")
    return service, topic or None


class HttpReply(AsyncConsumer):
    """A lean HTTP consumer: no channel-layer reader, no thread hop per message."""

    channel_layer_alias = "streaming.none"

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    async def problem(
        self, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = json.dumps({"error": code, "message": message}).encode()
        extra = [(b"content-type", b"application/json"), *(headers or [])]
        await self.send({"type": "http.response.start", "status": STATUS.get(code, 400), "headers": extra})
        await self.send({"type": "http.response.body", "body": body})

    async def bearer_grant(self, shake: Handshake) -> Grant:
        if shake.error or shake.token is None:
            raise AuthError(p.CLOSE_UNAUTHENTICATED, shake.error or "Send 'Authorization: Bearer <token>'.")
        return cached_grant(shake.token) or await database_sync_to_async(verify_token)(shake.token)

    async def unavailable(self, away: DatabaseUnavailable) -> None:
        await self.problem(p.UNAVAILABLE, away.reason, [(b"retry-after", str(away.retry_after).encode())])

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


def auth_problem(refused: AuthError) -> tuple[str, str]:
    code = p.UNAUTHENTICATED if refused.code == p.CLOSE_UNAUTHENTICATED else p.FORBIDDEN
    return code, refused.reason


class TicketConsumer(HttpReply):
    """POST /sse/ticket/ with the bearer token → {"ticket", "expires_in"}."""

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return
        if self.scope["method"] != "POST":
            await self.problem(p.METHOD_NOT_ALLOWED, "Use POST.", [(b"allow", b"POST")])
            return
        try:
            grant = await self.bearer_grant(Handshake.parse(self.scope))
        except (AuthError, HandshakeError) as refused:
            await self.problem(*_refusal(refused))
            return
        except DatabaseUnavailable as away:
            await self.unavailable(away)
            return
        lifetime = int(streaming_settings.SSE_TICKET_SECONDS)
        body = json.dumps({"ticket": ticket_issue(grant=grant), "expires_in": lifetime})
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        await self.send({"type": "http.response.start", "status": 200, "headers": headers})
        await self.send({"type": "http.response.body", "body": body.encode()})


def _refusal(refused: AuthError | HandshakeError) -> tuple[str, str]:
    if isinstance(refused, HandshakeError):
        return p.FORBIDDEN, "Origin not allowed."
    return auth_problem(refused)


class EventStreamConsumer(HttpReply):
    """GET /sse/stream/: one session whose output is an event stream."""

    conn: Connection | None = None
    worker: Worker

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return
        self.worker = get_worker()
        try:
            shake = Handshake.parse(self.scope)
            request = StreamRequest.parse(self.scope)
            grant = await self._grant(shake, request)
            keys = self._keys(grant, request)
        except (AuthError, HandshakeError) as refused:
            await self.problem(*_refusal(refused))
            return
        except DatabaseUnavailable as away:
            await self.unavailable(away)
            return
        except ProtocolError as exc:
            await self.problem(exc.code, exc.message)
            return
        await self.send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM_HEADERS})
        positions = decode_positions(keys, request.last_event_id)
        writer = EventStreamWriter(self.send, self._overflow, keys, positions)
        self.conn = conn = Connection(writer, self._closed, shake.remote, shake.origin, shake.user_agent)
        if not lifecycle.admit_socket(self.worker, conn):
            return
        if await lifecycle.open_session(self.worker, conn, grant, None):
            for key in keys:
                await self._subscribe(conn, key, positions.get(key))

    async def _grant(self, shake: Handshake, request: StreamRequest) -> Grant:
        if request.ticket is None:
            return await self.bearer_grant(shake)
        return await ticket_redeem(backend=self.worker.backend, ticket=request.ticket)

    def _keys(self, grant: Grant, request: StreamRequest) -> list[StreamKey]:
        cap = int(streaming_settings.MAX_SUBSCRIPTIONS)
        if len(request.streams) > cap:
            raise ProtocolError(p.TOO_MANY_SUBSCRIPTIONS, f"At most {cap} subscriptions.")
        keys = []
        for name, topic in request.streams:
            service = access.resolve(grant.principal, name, None)
            keys.append(access.stream_key(grant.principal, service, topic, None))
        if len(set(keys)) != len(keys):
            raise ProtocolError(p.BAD_REQUEST, "A stream is named twice.")
        return keys

    async def _subscribe(self, conn: Connection, key: StreamKey, since: tuple[str, int] | None) -> None:
        hub = self.worker.hub
        conn.subscriptions[key] = None
        replay, recovered = await hub.subscribe(
            conn, key, since[0] if since else None, since[1] if since else 0, max_bytes=conn.writer.limit
        )
        if recovered:
            await lifecycle.note_resume(self.worker, conn)
        if conn.closing:
            return
        conn.send_message(messages.subscribed(key[0], key[1], replay.epoch, replay.seq, recovered))
        hub.finish_join(conn, key, replay)

    def _overflow(self) -> None:
        if self.conn is not None:
            self.conn.overflow()

    def _closed(self, code: int, reason: str) -> None:
        """The server ends the stream (drain, expiry, limit): let the last events out, then clean up."""
        if self.conn is not None:
            self.conn.closed_with = (code, reason)
            asyncio.get_running_loop().create_task(self._end(code, reason))

    async def _end(self, code: int, reason: str) -> None:
        conn = self.conn
        assert conn is not None and isinstance(conn.writer, EventStreamWriter)
        try:
            await asyncio.wait_for(asyncio.shield(conn.writer.task), FLUSH_SECONDS)
        except (TimeoutError, asyncio.CancelledError, OSError):
            logger.info("SSE session %s ended before its last events left", conn.session_id)
        await self._finish(code, reason)

    async def _finish(self, code: int, reason: str) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await lifecycle.close_session(self.worker, conn, code, reason)

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        await self._finish(1001, "Client went away.")
        raise StopConsumer()
