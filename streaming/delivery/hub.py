"""The per-worker fan-out hub: one subscription per stream, ordered gap-free delivery to local subscribers.

Each worker process keeps one `Stream` per (service, topic) its clients follow. Events arrive in
seq order from the feed (Redis pub/sub, or in-process publishing); a gap in seq is filled from the
history before anything later is delivered, duplicates are dropped, and each event is written to
every subscriber as the same pre-built websocket frame. New subscribers buffer live events while
their missed events are replayed, so the hand-over from replay to live has no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Protocol

from streaming.delivery.backend import Backend
from streaming.delivery.deltas import Deltas
from streaming.delivery.history import Replay, StreamKey, mark_latest
from streaming.delivery.presence import Presence
from streaming.delivery.shared_reads import SharedReads
from streaming.server.writer import ws_text_frame
from streaming.wire import messages
from streaming.wire.protocol import Position

logger = logging.getLogger(__name__)

Frame = tuple[int, bytes]


class Subscriber(Protocol):
    def deliver(self, payload: bytes, frame: bytes) -> None: ...

    def send_message(self, message: Mapping[str, object]) -> None: ...


class Stream:
    """One followed stream in this worker: position, subscribers, and joiners being caught up."""

    __slots__ = (
        "key",
        "epoch",
        "seq",
        "subscribers",
        "joining",
        "ahead",
        "filling",
        "backlog",
        "ready",
        "deltas",
    )

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        self.epoch: str | None = None
        self.seq = 0
        self.subscribers: dict[Subscriber, None] = {}
        self.joining: dict[Subscriber, list[Frame]] = {}
        # Joiners whose replay went past what this worker's feed has announced yet: the seq they
        # have, so the live copies of those events are not sent twice.
        self.ahead: dict[Subscriber, int] = {}
        self.filling = True  # until the head is known, arrivals wait in the backlog
        self.backlog: list[tuple[str, int, bytes]] = []
        self.ready = asyncio.Event()
        self.deltas = Deltas()  # subscribers that asked for deltas

    def __len__(self) -> int:
        return len(self.subscribers) + len(self.joining) + len(self.ahead)


class Hub:
    """Local streams of one worker and the ordered delivery into them."""

    def __init__(self, backend: Backend, loop: asyncio.AbstractEventLoop) -> None:
        self.backend = backend
        self.loop = loop
        self.streams: dict[StreamKey, Stream] = {}
        self.deliveries = 0
        #: Per service: [events received, frames delivered] by this worker since it started.
        self.per_service: dict[str, list[int]] = {}
        #: Who follows the streams of services that share presence (joined by the sessions layer).
        self.presence = Presence(backend)
        #: Subscribers' history reads, shared while concurrent (a mass resume reads once per position).
        self.shared_reads = SharedReads(backend)

    # Subscribing -----------------------------------------------------------------------------

    async def subscribe(
        self,
        sub: Subscriber,
        key: StreamKey,
        since_epoch: str | None,
        since_seq: int,
        latest: bool = False,
        *,
        delta: bool = False,
        max_bytes: int = 0,
    ) -> tuple[Replay, bool]:
        """Join `key` (with deltas if `delta`); returns the replay answered and whether it was recovered.

        With `latest` and no `since_epoch`, the replay starts with the newest event (marked). A replay
        of more than `max_bytes` (the subscriber's outbound bound) is not recovered: refetch instead.
        The caller sends `subscribed` and then calls `finish_join`, without awaiting in between.
        """
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(key)
            asyncio.get_running_loop().create_task(self._start(stream))
        stream.joining[sub] = []
        if delta:
            stream.deltas.add(sub)
        await stream.ready.wait()
        replay = await self.shared_reads.replay(key, since_epoch, since_seq, self.position(key), max_bytes)
        recovered = since_epoch is not None and replay.frames is not None
        if latest and since_epoch is None and replay.seq > 0:
            replay = await self._with_latest(key, replay)
        return replay, recovered

    async def _with_latest(self, key: StreamKey, head: Replay) -> Replay:
        """The head preceded by its newest event, marked; the head alone if history no longer has it."""
        found = await self.shared_reads.replay(key, head.epoch, head.seq - 1, self.position(key))
        if not found.frames:
            return head
        (seq, payload), *rest = found.frames
        return Replay(found.epoch, found.seq, [(seq, mark_latest(payload)), *rest], start=seq - 1)

    def finish_join(self, sub: Subscriber, key: StreamKey, replay: Replay) -> None:
        """Send the replayed frames, then the live ones buffered meanwhile, then go live."""
        stream = self.streams.get(key)
        if stream is None or sub not in stream.joining:
            return
        buffered = stream.joining.pop(sub)
        last = replay.seq
        for _, payload in replay.frames or ():
            sub.deliver(payload, ws_text_frame(payload))
        for seq, payload in buffered:
            if seq > last:
                sub.deliver(payload, ws_text_frame(payload))
        if replay.epoch == stream.epoch and last > stream.seq:
            stream.ahead[sub] = last
        else:
            stream.subscribers[sub] = None

    async def unsubscribe(self, sub: Subscriber, key: StreamKey) -> None:
        await self.presence.leave(sub, key)
        stream = self.streams.get(key)
        if stream is None:
            return
        stream.subscribers.pop(sub, None)
        stream.joining.pop(sub, None)
        stream.ahead.pop(sub, None)
        stream.deltas.discard(sub)
        if not len(stream):
            del self.streams[key]
            await self.backend.unlisten(key)

    async def _start(self, stream: Stream) -> None:
        try:
            await self.backend.listen(stream.key)
            head = await self.backend.replay(stream.key, None, 0)
        except Exception:
            logger.exception("Could not start stream %s/%s", *stream.key)
            head = None
        if head is not None:
            stream.epoch, stream.seq = head.epoch, head.seq
        stream.ready.set()
        await self._drain_backlog(stream)

    # Delivery --------------------------------------------------------------------------------

    def deliver(self, key: StreamKey, epoch: str, seq: int, payload: bytes) -> None:
        """Accept one announced event (in any order); deliver in seq order, gap-free."""
        stream = self.streams.get(key)
        if stream is None:
            return
        if stream.filling:
            stream.backlog.append((epoch, seq, payload))
            return
        if epoch != stream.epoch:
            stream.backlog.append((epoch, seq, payload))
            self._reset(stream, epoch)
            return
        if seq <= stream.seq:
            return
        if seq > stream.seq + 1:
            stream.backlog.append((epoch, seq, payload))
            stream.filling = True
            asyncio.get_running_loop().create_task(self._fill(stream))
            return
        self._broadcast(stream, seq, payload)

    def _broadcast(self, stream: Stream, seq: int, payload: bytes) -> None:
        stream.seq = seq
        frame = ws_text_frame(payload)
        if stream.deltas.synced:
            self._broadcast_deltas(stream, seq, payload, frame)
        else:
            for sub in stream.subscribers:
                sub.deliver(payload, frame)
        self.deliveries += len(stream.subscribers)
        counts = self.per_service.get(stream.key[0])
        if counts is None:
            counts = self.per_service[stream.key[0]] = [0, 0]
        counts[0] += 1
        counts[1] += len(stream.subscribers)
        for buffered in stream.joining.values():
            buffered.append((seq, payload))
        if stream.ahead:
            self._catch_up(stream, seq)

    def _broadcast_deltas(self, stream: Stream, seq: int, payload: bytes, frame: bytes) -> None:
        """Subscribers in sync get the one delta built for this event; the rest the full frame."""
        assert stream.epoch is not None
        synced = stream.deltas.synced
        delta = stream.deltas.frame(stream.key, stream.epoch, seq, payload)
        for sub in stream.subscribers:
            if delta is not None and synced.get(sub):
                sub.deliver(*delta)
            else:
                sub.deliver(payload, frame)
                if sub in synced:
                    synced[sub] = True

    def _catch_up(self, stream: Stream, seq: int) -> None:
        """Subscribers ahead of the feed go live once it reaches what they already have."""
        for sub, last in list(stream.ahead.items()):
            if seq >= last:
                del stream.ahead[sub]
                stream.subscribers[sub] = None

    async def _fill(self, stream: Stream) -> None:
        """Fetch the events between our position and the backlog from history, then drain it."""
        try:
            replay = await self.backend.replay(stream.key, stream.epoch, stream.seq)
        except Exception:
            logger.exception("History read failed for %s/%s", *stream.key)
            replay = None
        if replay is None or replay.frames is None:
            if replay is not None:
                self._announce_reset(stream, replay.epoch, replay.seq)
        else:
            for seq, payload in replay.frames:
                if seq > stream.seq:
                    self._broadcast(stream, seq, payload)
        await self._drain_backlog(stream)

    async def _drain_backlog(self, stream: Stream) -> None:
        stream.filling = False
        backlog, stream.backlog = sorted(stream.backlog, key=lambda item: item[1]), []
        for epoch, seq, payload in backlog:
            self.deliver(stream.key, epoch, seq, payload)
            if stream.filling:  # a new gap: the rest waits for the next fill
                stream.backlog.extend(item for item in backlog if item[1] > seq)
                return

    def _reset(self, stream: Stream, epoch: str) -> None:
        """The history store lost this stream (new epoch): tell subscribers, restart from seq 0."""
        self._announce_reset(stream, epoch, 0)
        stream.filling = True
        asyncio.get_running_loop().create_task(self._fill(stream))

    def _announce_reset(self, stream: Stream, epoch: str, seq: int) -> None:
        stream.epoch, stream.seq = epoch, seq
        stream.deltas.reset()
        stream.subscribers.update(dict.fromkeys(stream.ahead))
        stream.ahead.clear()
        service, topic = stream.key
        notice = messages.subscribed(service, topic, epoch, seq, recovered=False)
        for sub in list(stream.subscribers):
            sub.send_message(notice)
        for buffered in stream.joining.values():
            buffered.clear()
        logger.warning("Stream %s/%s continues in a new epoch %s at seq %d", service, topic, epoch, seq)

    async def resync(self) -> None:
        """After the feed reconnected: fill whatever was announced while we were not listening."""
        for stream in list(self.streams.values()):
            if not stream.filling:
                stream.filling = True
                await self._fill(stream)

    def position(self, key: StreamKey) -> Position | None:
        """How far this worker has delivered `key` (None when it does not follow it)."""
        stream = self.streams.get(key)
        if stream is None or stream.epoch is None:
            return None
        return Position(stream.epoch, stream.seq)

    def subscriber_count(self) -> int:
        return sum(len(stream) for stream in self.streams.values())
