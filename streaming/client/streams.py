"""Per-stream bookkeeping (the last (epoch, seq) seen, resume positions, duplicates, resets) and the
client's state and counters."""

from __future__ import annotations

import asyncio
import enum
import json
from dataclasses import dataclass, field
from typing import Any

from streaming.wire import delta as deltas
from streaming.wire import protocol as p
from streaming.wire.protocol import Position


@dataclass(frozen=True, slots=True)
class Event:
    service: str
    topic: str
    epoch: str
    seq: int
    data: Any
    #: The newest event replayed to a new subscriber of a latest-value service, not a new change.
    latest: bool = False


@dataclass(frozen=True, slots=True)
class Followers:
    """Who follows a stream: how many subscriptions, and which users when the service shares them."""

    count: int
    users: list[str] | None


@dataclass(frozen=True, slots=True)
class Reset:
    """A stream lost continuity: the subscriber must refetch its state.

    `reason` is "not_recovered" (the history no longer holds what was missed), "epoch_changed",
    "gap", or the error code of a resubscription the server refused (the stream is then dropped).
    """

    service: str
    topic: str | None
    reason: str


@dataclass(slots=True)
class Stream:
    """One subscription and the position of the last event delivered from it."""

    service: str
    requested: str | None
    position: Position | None = None
    topic: str | None = None  # as the server names it (it fills in the user for notifications)
    delta: bool = False  # ask for fossil deltas
    text: str | None = None  # the last full event frame: the base of the next delta
    ready: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def matches(self, service: str, topic: str | None) -> bool:
        return self.service == service and topic in (self.requested, self.topic or self.requested)

    def subscribe_message(self, msg_id: int) -> dict[str, Any]:
        """The `subscribe` to send on a connection, resuming from the position when there is one."""
        msg: dict[str, Any] = {"type": p.SUBSCRIBE, "id": msg_id, "service": self.service}
        if self.topic or self.requested:
            msg["topic"] = self.topic or self.requested
        if self.position is not None:
            msg["since"] = {"epoch": self.position.epoch, "seq": self.position.seq}
        if self.delta:
            msg["delta"] = deltas.FOSSIL
        return msg

    def expand(self, msg: dict[str, Any], raw: str | bytes) -> tuple[dict[str, Any], str]:
        """The full event and its frame text: the frame itself, or the delta applied to the last one."""
        if "delta" not in msg:
            return msg, raw if isinstance(raw, str) else raw.decode()
        last = self.position
        if self.text is None or last is None or (msg["epoch"], msg["seq"]) != (last.epoch, last.seq + 1):
            raise ValueError(f"A delta for seq {msg['seq']} does not follow the last event received.")
        text = deltas.apply(self.text, msg["delta"])
        return json.loads(text), text

    def on_subscribed(self, msg: dict[str, Any]) -> Reset | None:
        """Adopt the server's topic; keep our position if it recovered, else restart from its head."""
        self.topic = msg["topic"]
        reset = None
        if self.position is None or not msg.get("recovered"):
            if self.position is not None:
                reset = Reset(self.service, self.topic, "not_recovered")
            self.position = Position(msg["epoch"], msg["seq"])
        if not self.ready.done():
            self.ready.set_result(msg["topic"])
        return reset

    def on_event(self, msg: dict[str, Any]) -> tuple[Reset | None, Event | None]:
        """The reset to report first (if continuity broke) and the event, or no event for a duplicate."""
        epoch, seq, last = msg["epoch"], msg["seq"], self.position
        if last is None or (epoch == last.epoch and seq <= last.seq):
            return None, None
        reset = None
        if epoch != last.epoch:
            reset = Reset(self.service, self.topic, "epoch_changed")
        elif seq > last.seq + 1:
            reset = Reset(self.service, self.topic, "gap")
        self.position = Position(epoch, seq)
        latest = bool(msg.get("latest"))
        return reset, Event(msg["service"], msg["topic"], epoch, seq, msg.get("data"), latest)


class State(enum.StrEnum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(slots=True)
class Stats:
    reconnects: int = 0
    last_reconnect_s: float | None = None  # from losing a connection to the next `welcome`
    max_reconnect_s: float = 0.0
    duplicates_dropped: int = 0
    resets: int = 0
