"""The publish API as a lean async HTTP consumer: POST /api/streams/<service>/events.

It runs on the event loop (no Django middleware stack, no thread hop per request): the token is
verified from the per-worker cache (one DB query on a miss) and the event goes out through
`apublish`. Errors are JSON `{"error": code, "message": …}`.
"""

from __future__ import annotations

import json
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.http import AsyncHttpConsumer

from streaming import services
from streaming.conf import streaming_settings
from streaming.delivery.publish import apublish
from streaming.sessions.auth import AuthError, cached_grant, verify_token
from streaming.wire import protocol as p
from streaming.wire.protocol import CLOSE_UNAUTHENTICATED, ProtocolError

Reply = tuple[int, dict[str, Any]]


def publisher_label(user_id: int | None, application_id: int | None) -> str:
    """How rates name a publisher: its user, or its client-credentials application."""
    return f"user:{user_id}" if user_id is not None else f"app:{application_id}"


def problem(status: int, code: str, message: str) -> Reply:
    return status, {"error": code, "message": message}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body `{"topic"?, "data"}`, or a ProtocolError saying what is wrong."""
    if len(raw) > streaming_settings.MAX_FRAME_BYTES:
        raise ProtocolError(p.TOO_LARGE, f"Body is larger than {streaming_settings.MAX_FRAME_BYTES} bytes.")
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


async def handle_publish(service: str, authorization: str, raw: bytes) -> Reply:
    if authorization[:7].lower() != "bearer " or not authorization[7:].strip():
        return problem(401, p.UNAUTHENTICATED, "Send 'Authorization: Bearer <token>'.")
    token = authorization[7:].strip()
    try:
        grant = cached_grant(token) or await database_sync_to_async(verify_token)(token)
    except AuthError as refused:
        status = 401 if refused.code == CLOSE_UNAUTHENTICATED else 403
        return problem(status, p.UNAUTHENTICATED if status == 401 else p.FORBIDDEN, refused.reason)
    if services.get(service) is None:
        return problem(404, p.UNKNOWN_SERVICE, f"Unknown service {service[:40]!r}.")
    if not grant.principal.can_publish(service):
        return problem(403, p.FORBIDDEN, f"Your token does not allow publish:{service}.")
    try:
        body = parse_body(raw)
        publisher = publisher_label(*grant.principal.owner)
        published = await apublish(service, body["data"], topic=body.get("topic"), publisher=publisher)
    except ProtocolError as exc:
        return problem(413 if exc.code == p.TOO_LARGE else 400, exc.code, exc.message)
    except ValueError as exc:
        return problem(400, p.BAD_REQUEST, f"Data cannot be encoded as JSON: {exc}.")
    return 202, {
        "service": published.service,
        "topic": published.topic,
        "epoch": published.epoch,
        "seq": published.seq,
    }


class PublishConsumer(AsyncHttpConsumer):
    channel_layer_alias = "streaming.none"  # no channel-layer reader per request

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch hops to a thread per message to close old DB connections;
        # database_sync_to_async (used on a token-cache miss) does that itself.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    async def handle(self, body: bytes) -> None:
        if self.scope["method"] != "POST":
            status, reply = problem(405, p.METHOD_NOT_ALLOWED, "Use POST.")
            headers = [(b"Allow", b"POST")]
        else:
            headers = []
            authorization = dict(self.scope["headers"]).get(b"authorization", b"").decode("latin1")
            service = self.scope["url_route"]["kwargs"]["service"]
            status, reply = await handle_publish(service, authorization, body)
        await self.send_response(
            status, json.dumps(reply).encode(), headers=[(b"Content-Type", b"application/json"), *headers]
        )
