"""History reads shared by concurrent subscribers: a mass resume costs one read per position, not per client.

When a worker dies, its clients come back at once, mostly from the same position of the same
streams. A subscriber asking for (key, epoch, seq) while a read of that key is in flight takes its
answer instead of reading again: the same read if it asked the same, or a slice of a read from a
lower seq of the same epoch (the frames after its own seq). Sharing is only sound while the hub has
delivered nothing new on the stream since that read started: the new subscriber is only buffering
live events from the moment it joined, so anything delivered earlier must be in the read it shares.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from streaming.delivery.backend import Backend
from streaming.delivery.history import Replay, StreamKey
from streaming.wire.protocol import Position


@dataclass(slots=True)
class Read:
    """One backend replay in flight: what it asked and where the hub stood when it started."""

    since_epoch: str | None
    since_seq: int
    hub_at: Position | None
    max_bytes: int
    task: asyncio.Task[Replay]

    def serves(
        self, since_epoch: str | None, since_seq: int, hub_at: Position | None, max_bytes: int
    ) -> bool:
        if hub_at != self.hub_at or since_epoch != self.since_epoch or max_bytes != self.max_bytes:
            return False
        return since_seq == self.since_seq or (since_epoch is not None and self.since_seq < since_seq)


def narrowed(replay: Replay, read_from: int, since_seq: int) -> Replay | None:
    """`replay` (read from `read_from`) as an answer to `since_seq` of the same epoch; None if unsure."""
    if since_seq == read_from:
        return replay
    if replay.frames is None:  # e.g. trimmed below read_from: a later position may still be covered
        return None
    if since_seq > replay.seq:
        return Replay(replay.epoch, replay.seq, None)
    return Replay(replay.epoch, replay.seq, replay.frames[since_seq - read_from :])


class SharedReads:
    """The hub's replays in flight, by stream; concurrent subscribers share them."""

    __slots__ = ("backend", "in_flight", "reads")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.in_flight: dict[StreamKey, list[Read]] = {}
        #: Backend replays started (the rest were shared).
        self.reads = 0

    async def replay(
        self,
        key: StreamKey,
        since_epoch: str | None,
        since_seq: int,
        hub_at: Position | None,
        max_bytes: int = 0,
    ) -> Replay:
        """The backend's replay of `key` from (since_epoch, since_seq), shared when one is in flight
        for the same byte budget (`max_bytes`, 0 for none)."""
        for read in self.in_flight.get(key, ()):
            if read.serves(since_epoch, since_seq, hub_at, max_bytes):
                answer = narrowed(await asyncio.shield(read.task), read.since_seq, since_seq)
                if answer is not None:
                    return answer
                break
        return await asyncio.shield(self._start(key, since_epoch, since_seq, hub_at, max_bytes).task)

    def _start(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, hub_at: Position | None, max_bytes: int
    ) -> Read:
        self.reads += 1
        reading = self.backend.replay(key, since_epoch, since_seq, max_bytes)
        task = asyncio.get_running_loop().create_task(reading)
        read = Read(since_epoch, since_seq, hub_at, max_bytes, task)
        self.in_flight.setdefault(key, []).append(read)
        task.add_done_callback(lambda _: self._finished(key, read))
        return read

    def _finished(self, key: StreamKey, read: Read) -> None:
        reads = self.in_flight.get(key, [])
        reads.remove(read)
        if not reads:
            self.in_flight.pop(key, None)
        if not read.task.cancelled():
            read.task.exception()  # retrieved: every waiter may have gone
