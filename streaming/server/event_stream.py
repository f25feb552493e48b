"""Server-sent events: the output of one /sse/stream/ response, each server message one SSE event.

Events and `subscribed` replies carry an `id:` holding the position of every stream of the
response (see `encode_positions`), so that a client resuming with Last-Event-ID misses nothing.
`reconnect` becomes `event: reconnect` with a `retry:` hint; the close becomes `event: close`
with the code and reason, and the response ends. Heartbeats are plain `ping` messages (EventSource
hides comments from the page, and the client watches for silence).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from streaming.server.writer import ASGISend, QueueWriter
from streaming.wire import protocol as p

StreamKey = tuple[str, str]
Positions = dict[StreamKey, tuple[str, int]]

POSITIONED = frozenset({p.EVENT, p.SUBSCRIBED})


def encode_positions(keys: Sequence[StreamKey], positions: Positions) -> str:
    """`epoch:seq` of each stream in subscription order, comma-separated ("" for none yet)."""
    return ",".join("{}:{}".format(*positions[key]) if key in positions else "" for key in keys)


def decode_positions(keys: Sequence[StreamKey], text: str) -> Positions:
    """The positions a Last-Event-ID holds for `keys`; empty when it does not match them."""
    parts = text.split(",")
    if len(parts) != len(keys):
        return {}
    positions: Positions = {}
    for key, part in zip(keys, parts, strict=True):
        epoch, _, seq = part.rpartition(":")
        if epoch and seq.isdigit():
            positions[key] = (epoch, int(seq))
    return positions


def sse_event(
    data: str, *, event: str | None = None, event_id: str | None = None, retry: int | None = None
) -> bytes:
    """One SSE event block (the data is single-line JSON)."""
    lines = [f"event: {event}"] if event else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.append(f"data: {data}")
    return ("\n".join(lines) + "\n\n").encode()


class EventStreamWriter(QueueWriter):
    """Feeds the HTTP response body; remembers the position of each stream for the event ids."""

    def __init__(
        self, send: ASGISend, on_overflow: Callable[[], None], keys: Sequence[StreamKey], positions: Positions
    ) -> None:
        super().__init__(send, on_overflow)
        self.keys = list(keys)
        self.positions = dict(positions)

    def message(self, payload: bytes) -> dict[str, Any]:
        return {"type": "http.response.body", "body": self.block(payload), "more_body": True}

    def last_message(self, code: int, reason: str) -> dict[str, Any]:
        data = json.dumps({"type": "close", "code": code, "reason": reason[:120]})
        return {"type": "http.response.body", "body": sse_event(data, event="close"), "more_body": False}

    def block(self, payload: bytes) -> bytes:
        text = payload.decode()
        msg = json.loads(text)
        kind = msg.get("type")
        if kind == p.RECONNECT:
            return sse_event(text, event=kind, retry=int(msg.get("retry_after_ms") or 0))
        if kind in POSITIONED:
            self.positions[(msg["service"], msg["topic"])] = (msg["epoch"], msg["seq"])
            return sse_event(text, event_id=encode_positions(self.keys, self.positions))
        return sse_event(text)
