"""What every history backend shares: stream keys, positions, event frames and the resume decision.

Each stream (service, topic) has an epoch and numbers its events 1, 2, 3… The epoch changes when
the history store loses the stream (Redis reset), so clients learn that resuming is impossible.
The event frame is built once, where the seq is assigned, and stored and fanned out as text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from streaming.wire.protocol import EVENT, encode

StreamKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Appended:
    """An event after numbering: its position and the complete frame sent to subscribers."""

    epoch: str
    seq: int
    frame: str


@dataclass(frozen=True, slots=True)
class Replay:
    """What a subscriber resuming from (epoch, seq) gets: the head and, if recoverable, the missed frames."""

    epoch: str
    seq: int
    frames: list[tuple[int, str]] | None
    #: Where `subscribed` places a new subscriber when not at the head: just before the newest
    #: event, which `frames` then starts with (latest-value mode).
    start: int | None = None

    @property
    def position(self) -> int:
        """The seq `subscribed` announces: events after it follow."""
        return self.seq if self.start is None else self.start


def new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def frame_head(service: str, topic: str) -> str:
    """The fixed start of an event frame; epoch, seq and data are appended by the store."""
    return encode({"type": EVENT, "service": service, "topic": topic})[:-1] + ',"epoch":'


def build_frame(head: str, epoch: str, seq: int, data_json: str) -> str:
    return f'{head}"{epoch}","seq":{seq},"data":{data_json}}}'


def mark_latest(frame: bytes) -> bytes:
    """The event frame marked as the newest value replayed to a new subscriber (`"latest": true`)."""
    return frame[:-1] + b',"latest":true}'


def replay_from(
    epoch: str, head_seq: int, since_epoch: str, since_seq: int, frames: list[tuple[int, str]]
) -> Replay:
    """Decide whether `frames` (the stored events after since_seq) cover the gap exactly."""
    if since_epoch != epoch or since_seq > head_seq:
        return Replay(epoch, head_seq, None)
    missing = head_seq - since_seq
    if missing == 0:
        return Replay(epoch, head_seq, [])
    if len(frames) != missing or frames[0][0] != since_seq + 1:
        return Replay(epoch, head_seq, None)
    return Replay(epoch, head_seq, frames)
