"""Per-stream delta state in one worker: the previous event frame and which subscribers hold it.

The delta of an event is computed once, here, for every subscriber that asked for deltas and has
received the previous event of the stream; the others (new, resumed, reset) get the full frame and
are in sync from then on.
"""

from __future__ import annotations

from streaming.delivery.history import StreamKey
from streaming.server.writer import ws_text_frame
from streaming.wire import delta, messages
from streaming.wire.protocol import encode


class Deltas:
    """Which delta subscribers hold the previous frame, and that frame."""

    __slots__ = ("synced", "last_seq", "last")

    def __init__(self) -> None:
        self.synced: dict[object, bool] = {}
        self.last_seq = 0
        self.last: bytes | None = None

    def add(self, sub: object) -> None:
        """`sub` wants deltas; its first event is a full frame."""
        self.synced[sub] = False

    def discard(self, sub: object) -> None:
        self.synced.pop(sub, None)

    def reset(self) -> None:
        """Continuity broke (new epoch): everybody gets a full frame next."""
        self.last = None
        self.synced = dict.fromkeys(self.synced, False)

    def frame(self, key: StreamKey, epoch: str, seq: int, payload: bytes) -> tuple[bytes, bytes] | None:
        """The delta message and its websocket frame for this event, when it is worth sending."""
        previous = self.last if self.last_seq == seq - 1 else None
        self.last_seq, self.last = seq, payload
        if previous is None or not any(self.synced.values()):
            return None
        text = delta.create(previous, payload)
        if text is None:
            return None
        message = encode(messages.event_delta(key[0], key[1], epoch, seq, text)).encode()
        if len(message) >= len(payload):
            return None
        return message, ws_text_frame(message)
