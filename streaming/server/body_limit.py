"""Request body caps: an HTTP body over its path's limit is refused with 413 before it is held.

Daphne (Twisted) buffers a whole request body, then queues all of it to the application at once,
so an application-level check comes after the memory is spent. `BoundedWebRequest` refuses at the
headers (Content-Length) or as soon as the bytes so far pass the limit, and drops the connection;
`BodyLimit` does the same for any ASGI server in front of the application.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import Any

from daphne import http_protocol

from streaming.conf import streaming_settings

Limit = Callable[[], int]
ASGIApp = Callable[..., Awaitable[None]]

_limits: list[tuple[str, Limit]] = []

REFUSAL = json.dumps({"error": "too_large", "message": "Request body is too large."}).encode()


def limit_path(prefix: str, limit: Limit) -> None:
    """Bodies of requests whose path starts with `prefix` may hold at most `limit()` bytes."""
    _limits.append((prefix, limit))


def limit_for(path: str) -> int:
    for prefix, limit in _limits:
        if path.startswith(prefix):
            return limit()
    return int(streaming_settings.MAX_REQUEST_BODY_BYTES)


class BoundedWebRequest(http_protocol.WebRequest):
    """Daphne's request, refusing an oversized body at its first byte over the limit."""

    received = 0
    refused = False

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        # The request line is parsed but not yet on the request: the channel holds it.
        self.limit = limit_for(getattr(self.channel, "_path", b"/").decode("latin1"))
        if length is not None and length > self.limit:
            self.refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self.refused:
            return
        self.received += len(data)
        if self.received > self.limit:
            self.refuse()
            return
        super().handleContentChunk(data)

    def refuse(self) -> None:
        """Answer 413 and hang up: nothing more of this body is read or kept."""
        self.refused = True
        self.content = BytesIO()
        self.requestHeaders.removeHeader(b"Expect")  # no "100 Continue" after the refusal
        head = (
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(REFUSAL)
        )
        self.channel.transport.write(head + REFUSAL)
        self.channel.loseConnection()

    def process(self) -> Any:
        if not self.refused:
            return super().process()
        return None


def refuse_large_bodies() -> None:
    """Make daphne build BoundedWebRequest for every HTTP request from now on."""
    http_protocol.WebRequest = BoundedWebRequest


class BodyLimit:
    """ASGI middleware: 413 for a declared or received HTTP body over its path's limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > limit:
            await refuse(send)
            return
        gate = _Gate(receive, send, limit)
        await self.app(scope, gate.receive, gate.send)


class _Gate:
    """Counts body bytes on the way in; past the limit the app sees a disconnect and we answer 413."""

    def __init__(self, receive: Any, send: Any, limit: int) -> None:
        self.inner_receive, self.inner_send, self.limit = receive, send, limit
        self.received = 0
        self.refused = False

    async def receive(self) -> dict[str, Any]:
        message = await self.inner_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.refused = True
                await refuse(self.inner_send)
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: dict[str, Any]) -> None:
        if not self.refused:
            await self.inner_send(message)


async def refuse(send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": REFUSAL})
