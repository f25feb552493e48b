"""The publish API as a lean async HTTP consumer: POST /api/streams/<service>/events.

It runs on the event loop (no Django middleware stack, no thread hop per request): the token is
verified from the per-worker cache (one DB query on a miss) and the event goes out through
`apublish`. Errors are JSON `{"error": code, "message": …}`.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer

from streaming import services
from streaming.conf import streaming_settings
from streaming.delivery.publish import apublish
from streaming.server.body_limit import limit_path
from streaming.sessions import access, publish_rate
from streaming.sessions.auth import AuthError, DatabaseUnavailable, Grant, cached_grant, verify_token
from streaming.wire import protocol as p
from streaming.wire.protocol import CLOSE_UNAUTHENTICATED, ProtocolError

Reply = tuple[int, dict[str, Any]]

limit_path("/api/streams/", lambda: int(streaming_settings.MAX_FRAME_BYTES))


def publisher_label(user_id: int | None, application_id: int | None) -> str:
    """How rates name a publisher: its user, or its client-credentials application."""
    return f"user:{user_id}" if user_id is not None else f"app:{application_id}"


def problem(status: int, code: str, message: str, retry_after: int | None = None) -> Reply:
    """An error reply; `retry_after` (seconds) also becomes the Retry-After header."""
    if retry_after is None:
        return status, {"error": code, "message": message}
    return status, {"error": code, "message": message, "retry_after": retry_after}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body `{"topic"?, "data"}`, or a ProtocolError saying what is wrong."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise ProtocolError(p.BAD_REQUEST, "Body is not valid JSON.") from None
    if not isinstance(body, dict) or "data" not in body:
        raise ProtocolError(p.BAD_REQUEST, 'Body must be a JSON object {"topic"?, "data"}.')
    topic = body.get("topic")
    if topic is not None and (not isinstance(topic, str) or not topic or len(topic) > 200):
        raise ProtocolError(p.BAD_REQUEST, "'topic' must be a non-empty string.")
    unknown = set(body) - {"topic", "data"}
    if unknown:
        raise ProtocolError(p.BAD_REQUEST, f"Unknown field(s): {', '.join(sorted(unknown))}.")
    return body


async def authorize(service: str, authorization: str) -> Grant | Reply:
    """The grant of a request allowed to publish to `service`, or the reply refusing it."""
    if authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        return problem(401, p.UNAUTHENTICATED, "Send 'Authorization: Bearer <token>'.")
    token = authorization[7:].strip()
    try:
        grant = cached_grant(token) or await database_sync_to_async(verify_token)(token)
    except AuthError as refused:
        status = 401 if refused.code == CLOSE_UNAUTHENTICATED else 403
        return problem(status, p.UNAUTHENTICATED if status == 401 else p.FORBIDDEN, refused.reason)
    except DatabaseUnavailable as away:
        return problem(503, p.UNAVAILABLE, away.reason, away.retry_after)
    if services.get(service) is None:
        return problem(404, p.UNKNOWN_SERVICE, f"Unknown service {service[:40]!r}.")
    if service in access.disabled_services:
        return problem(409, p.SERVICE_DISABLED, f"Service {service!r} is disabled.")
    if not grant.principal.can_publish(service):
        return problem(403, p.FORBIDDEN, f"Your token does not allow publish:{service}.")
    wait = publish_rate.retry_after(grant.checksum, service)
    if wait is not None:
        return problem(429, p.RATE_LIMITED, f"Too many publishes; retry after {wait} s.", wait)
    return grant


async def handle_publish(service: str, grant: Grant, raw: bytes) -> Reply:
    try:
        body = parse_body(raw)
        policy = services.get(service)
        assert policy is not None  # checked by authorize
        topic = policy.publish_topic(grant.principal, body.get("topic"), body["data"])
        publisher = publisher_label(*grant.principal.owner)
        published = await apublish(service, body["data"], topic=topic, publisher=publisher)
    except ProtocolError as exc:
        return problem(403 if exc.code == p.FORBIDDEN else 400, exc.code, exc.message)
    except ValueError as exc:
        return problem(400, p.BAD_REQUEST, f"Data cannot be encoded as JSON: {exc}.")
    return 202, {
        "service": published.service,
        "topic": published.topic,
        "epoch": published.epoch,
        "seq": published.seq,
    }


def too_large() -> Reply:
    limit = streaming_settings.MAX_FRAME_BYTES
    return problem(413, p.TOO_LARGE, f"Body is larger than {limit} bytes.")


class PublishConsumer(AsyncHttpConsumer):
    channel_layer_alias = "streaming.none"  # no channel-layer reader per request

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch hops to a thread per message to close old DB connections;
        # database_sync_to_async (used on a token-cache miss) does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    grant: Grant | None = None
    received = 0

    async def http_request(self, message: dict[str, Any]) -> None:
        """Judge the request at its first chunk and never hold more than MAX_FRAME_BYTES of it."""
        if self.grant is None:
            refusal = await self.admit()
            if refusal is not None:
                await self.reply(*refusal)
                raise StopConsumer()
        self.received += len(message.get("body", b""))
        if self.received > streaming_settings.MAX_FRAME_BYTES:
            await self.reply(*too_large())
            raise StopConsumer()
        await super().http_request(message)

    async def admit(self) -> Reply | None:
        """The refusal of this request before its body is read, if any."""
        if self.scope["method"] != "POST":
            return problem(405, p.METHOD_NOT_ALLOWED, "Use POST.")
        headers = dict(self.scope["headers"])
        declared = headers.get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > streaming_settings.MAX_FRAME_BYTES:
            return too_large()
        service = self.scope["url_route"]["kwargs"]["service"]
        admitted = await authorize(service, headers.get(b"authorization", b"").decode("latin1"))
        if isinstance(admitted, Grant):
            self.grant = admitted
            return None
        return admitted

    async def handle(self, body: bytes) -> None:
        assert self.grant is not None
        service = self.scope["url_route"]["kwargs"]["service"]
        await self.reply(*await handle_publish(service, self.grant, body))

    async def reply(self, status: int, reply: dict[str, Any]) -> None:
        headers = [(b"Content-Type", b"application/json")]
        if status == 405:
            headers.append((b"Allow", b"POST"))
        if "retry_after" in reply:
            headers.append((b"Retry-After", str(reply["retry_after"]).encode()))
        await self.send_response(status, json.dumps(reply).encode(), headers=headers)
