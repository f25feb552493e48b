"""Per-stream event numbering and bounded history: Redis Streams in production, in-process embedded.

Each stream (service, topic) has an epoch and numbers its events 1, 2, 3… The epoch changes when
the history store loses the stream (Redis reset), so clients learn that resuming is impossible.
The event frame is built once, where the seq is assigned, and stored and fanned out as text.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass

from streaming.conf import streaming_settings
from streaming.protocol import encode

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


def new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def frame_head(service: str, topic: str) -> str:
    """The fixed start of an event frame; epoch, seq and data are appended by the store."""
    return encode({"type": "event", "service": service, "topic": topic})[:-1] + ',"epoch":'


def build_frame(head: str, epoch: str, seq: int, data_json: str) -> str:
    return f'{head}"{epoch}","seq":{seq},"data":{data_json}}}'


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


class _MemoryLog:
    __slots__ = ("epoch", "seq", "events")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.seq = 0
        self.events: deque[tuple[int, float, str]] = deque()


class MemoryHistory:
    """The embedded store: one process, numbering under a lock, retention by count and age."""

    def __init__(self) -> None:
        self._logs: dict[StreamKey, _MemoryLog] = {}
        self._lock = threading.Lock()

    def _log(self, key: StreamKey) -> _MemoryLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _MemoryLog()
        return log

    def append(self, key: StreamKey, data_json: str) -> Appended:
        with self._lock:
            log = self._log(key)
            log.seq += 1
            frame = build_frame(frame_head(*key), log.epoch, log.seq, data_json)
            now = time.monotonic()
            log.events.append((log.seq, now, frame))
            self._trim(log, now)
            return Appended(log.epoch, log.seq, frame)

    @staticmethod
    def _trim(log: _MemoryLog, now: float) -> None:
        keep = streaming_settings.HISTORY_MAX_EVENTS
        min_age = streaming_settings.HISTORY_MIN_SECONDS
        hard = streaming_settings.HISTORY_HARD_MAX_EVENTS
        events = log.events
        while len(events) > hard or (len(events) > keep and now - events[0][1] >= min_age):
            events.popleft()

    def head(self, key: StreamKey) -> tuple[str, int]:
        with self._lock:
            log = self._log(key)
            return log.epoch, log.seq

    def replay(self, key: StreamKey, since_epoch: str, since_seq: int) -> Replay:
        with self._lock:
            log = self._log(key)
            frames = [(seq, frame) for seq, _, frame in log.events if seq > since_seq]
            return replay_from(log.epoch, log.seq, since_epoch, since_seq, frames)

    def reset(self) -> None:
        """Forget every stream (as a restarted store would); new epochs follow."""
        with self._lock:
            self._logs.clear()


memory_history = MemoryHistory()
