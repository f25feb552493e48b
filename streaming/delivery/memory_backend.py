"""The embedded backend: numbering, history, announcements and slots inside this process.

Numbering happens under a lock, so publishers in any thread (request threads, `manage.py shell`
code run by the server) get gap-free seqs; events are handed to the worker's hub on its loop.
Other processes on the same machine publish through the running server (`local_channel`); with no
server running, their events stay in their own process (and `publish_event` refuses to publish).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from streaming.conf import streaming_settings
from streaming.delivery import local_channel
from streaming.delivery.backend import RESUME_MEMORY_SECONDS, Backend
from streaming.delivery.history import (
    Appended,
    Replay,
    StreamKey,
    build_frame,
    frame_head,
    new_epoch,
    replay_from,
)
from streaming.delivery.options import stream_options

if TYPE_CHECKING:
    from streaming.delivery.hub import Hub

logger = logging.getLogger(__name__)


class _MemoryLog:
    __slots__ = ("epoch", "seq", "events", "bytes")

    def __init__(self) -> None:
        self.epoch = new_epoch()
        self.seq = 0
        #: (seq, monotonic time, frame, frame bytes)
        self.events: deque[tuple[int, float, str, int]] = deque()
        self.bytes = 0


class MemoryBackend(Backend):
    """The embedded backend: one process, numbering under a lock, retention by count and age."""

    kind = "memory"

    def __init__(self) -> None:
        self._logs: dict[StreamKey, _MemoryLog] = {}
        self._lock = threading.Lock()
        self._hub: Hub | None = None
        self._local_server: asyncio.AbstractServer | None = None
        self._slots: dict[str, dict[str, float]] = {}
        self._closed: dict[str, tuple[float, str]] = {}
        self._presence: dict[StreamKey, dict[str, float]] = {}
        self._presence_versions: dict[StreamKey, int] = {}
        self._marks: dict[str, tuple[float, float]] = {}

    def _log(self, key: StreamKey) -> _MemoryLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _MemoryLog()
        return log

    def append(self, key: StreamKey, data_json: str) -> Appended:
        """Number and announce here when this process serves; else through the running server."""
        path = streaming_settings.LOCAL_SOCKET
        if self._hub is None and path:
            try:
                return local_channel.send(path, key, data_json)
            except local_channel.ServerUnreachable as exc:
                logger.warning("%s; the event stays in this process", exc)
        appended = self._number(key, data_json)
        self._announce(key, appended)
        return appended

    async def aappend(self, key: StreamKey, data_json: str) -> Appended:
        return self.append(key, data_json)

    def _number(self, key: StreamKey, data_json: str) -> Appended:
        with self._lock:
            log = self._log(key)
            log.seq += 1
            frame = build_frame(frame_head(*key), log.epoch, log.seq, data_json)
            now = time.monotonic()
            size = len(frame.encode())
            log.events.append((log.seq, now, frame, size))
            log.bytes += size
            self._trim(log, now, key[0])
            return Appended(log.epoch, log.seq, frame)

    @staticmethod
    def _trim(log: _MemoryLog, now: float, service: str) -> None:
        options = stream_options(service)
        keep, min_age = options.history_max_events, options.history_min_seconds
        cap = options.history_max_bytes or float("inf")
        hard = streaming_settings.HISTORY_HARD_MAX_EVENTS
        events = log.events
        while (
            len(events) > hard
            or (len(events) > keep and now - events[0][1] >= min_age)
            or (len(events) > 1 and log.bytes > cap)  # the newest event always stays
        ):
            log.bytes -= events.popleft()[3]

    def head(self, key: StreamKey) -> tuple[str, int]:
        with self._lock:
            log = self._log(key)
            return log.epoch, log.seq

    async def replay(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, max_bytes: int = 0
    ) -> Replay:
        with self._lock:
            log = self._log(key)
            if since_epoch is None:
                return Replay(log.epoch, log.seq, None)
            missed = [(seq, frame, size) for seq, _, frame, size in log.events if seq > since_seq]
            if max_bytes and sum(size for _, _, size in missed) > max_bytes:
                return Replay(log.epoch, log.seq, None)
            frames = [(seq, frame.encode()) for seq, frame, _ in missed]
            return replay_from(log.epoch, log.seq, since_epoch, since_seq, frames)

    def reset(self) -> None:
        """Forget every stream (as a restarted store would); new epochs follow."""
        with self._lock:
            self._logs.clear()

    # Announcements ---------------------------------------------------------------------------

    def attach(self, hub: Hub) -> None:
        self._hub = hub

    def _announce(self, key: StreamKey, appended: Appended) -> None:
        """Hand the event to the worker's hub, on its loop, from whatever thread published it."""
        hub = self._hub
        if hub is None or hub.loop.is_closed():
            return
        args = (key, appended.epoch, appended.seq, appended.frame.encode())
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is hub.loop:
            hub.deliver(*args)
        else:
            hub.loop.call_soon_threadsafe(hub.deliver, *args)

    async def listen(self, key: StreamKey) -> None:
        return None

    def reaches_subscribers(self) -> bool:
        return self._hub is not None or local_channel.reachable(streaming_settings.LOCAL_SOCKET)

    async def serve_other_processes(self) -> None:
        """Let local processes publish through this server (see `local_channel`)."""
        path = streaming_settings.LOCAL_SOCKET
        if path and self._local_server is None:
            self._local_server = await local_channel.serve(path, self.append)

    async def unlisten(self, key: StreamKey) -> None:
        return None

    # Slots ----------------------------------------------------------------------------------------

    async def take_slot(self, owner: str, session_id: str, cap: int, ttl: float) -> bool:
        now = time.time()
        slots = self._slots.setdefault(owner, {})
        for gone in [s for s, expiry in slots.items() if expiry <= now]:
            del slots[gone]
        if len(slots) >= cap:
            return False
        slots[session_id] = now + ttl
        return True

    async def release_slot(self, owner: str, session_id: str) -> None:
        self._slots.get(owner, {}).pop(session_id, None)

    async def refresh_slots(self, slots: list[tuple[str, str]], ttl: float) -> None:
        expiry = time.time() + ttl
        for owner, session_id in slots:
            self._slots.setdefault(owner, {})[session_id] = expiry

    # Presence --------------------------------------------------------------------------------

    def _changed(self, key: StreamKey) -> None:
        self._presence_versions[key] = self._presence_versions.get(key, 0) + 1

    async def presence_join(self, key: StreamKey, member: str, ttl: float) -> None:
        members = self._presence.setdefault(key, {})
        if member not in members:
            self._changed(key)
        members[member] = time.time() + ttl

    async def presence_leave(self, key: StreamKey, member: str) -> None:
        if self._presence.get(key, {}).pop(member, None) is not None:
            self._changed(key)

    async def presence_refresh(self, members: list[tuple[StreamKey, str]], ttl: float) -> None:
        expiry = time.time() + ttl
        for key, member in members:
            self._presence.setdefault(key, {})[member] = expiry

    async def presence_version(self, key: StreamKey) -> int:
        members = self._presence.get(key, {})
        now = time.time()
        gone = [member for member, expiry in members.items() if expiry <= now]
        for member in gone:
            del members[member]
        if gone:
            self._changed(key)
        return self._presence_versions.get(key, 0)

    async def presence_members(self, key: StreamKey) -> list[str]:
        await self.presence_version(key)
        return list(self._presence.get(key, {}))

    # Resume memory ---------------------------------------------------------------------------

    async def remember_closed(self, checksum: str, session_id: str) -> None:
        self._closed[checksum] = (time.monotonic(), session_id)

    async def previous_session(self, checksum: str) -> str:
        at, session_id = self._closed.get(checksum, (0.0, ""))
        return session_id if time.monotonic() - at < RESUME_MEMORY_SECONDS else ""

    def mark_stale(self, mark: str, at: float, keep: float) -> None:
        self._marks[mark] = (at, at + keep)

    async def stale_marks(self) -> dict[str, float]:
        now = time.time()
        return {mark: at for mark, (at, until) in self._marks.items() if until > now}
