"""Presence: who follows each stream, counted in the backend across workers, and coalesced diffs.

Every follower of a stream whose service shares presence is an entry "<session>:<label>" in the
backend, written when it subscribes and removed when it leaves; its worker refreshes the entries
every third of PRESENCE_TTL, so a killed worker's followers drop out within PRESENCE_TTL.

Watchers (subscribers that asked for `"presence": true`) get one `presence` diff per stream and
PRESENCE_INTERVAL at most: each worker compares the followers with what it last told its watchers,
so a burst of joins (a mass reconnect) costs one message per watcher per interval, not one per join,
and a user who leaves and comes back within the interval costs nothing. The cost per worker and
watched stream is one backend call per interval while nothing changes, plus one read of the
followers in an interval in which they changed.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from streaming.conf import streaming_settings
from streaming.delivery.backend import Backend
from streaming.delivery.history import StreamKey
from streaming.delivery.options import stream_options
from streaming.wire import messages

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger(__name__)


class Watcher(Protocol):
    def send_message(self, message: Mapping[str, object]) -> None: ...


def label_of(member: str) -> str:
    """The user (or application) part of a member "<session>:<label>"."""
    return member.split(":", 1)[1]


@dataclass(slots=True)
class Seen:
    """What this worker last told a stream's watchers."""

    version: int
    labels: Counter[str]
    count: int

    @property
    def users(self) -> list[str]:
        return sorted(self.labels)


class Presence:
    """This worker's followers and watchers per stream, and the duty that refreshes and diffs them."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.followers: dict[StreamKey, dict[Watcher, str]] = {}
        self.watchers: dict[StreamKey, dict[Watcher, None]] = {}
        self.seen: dict[StreamKey, Seen] = {}
        self.next_refresh = 0.0

    async def join(self, sub: Watcher, key: StreamKey, member: str) -> None:
        """Count `sub` (whose member entry is `member`) among the followers of `key`."""
        self.followers.setdefault(key, {})[sub] = member
        await self.backend.presence_join(key, member, streaming_settings.PRESENCE_TTL)

    async def watch(self, sub: Watcher, key: StreamKey) -> Seen:
        """Send `sub` the diffs of `key` from now on; returns the followers the diffs start from."""
        seen = self.seen.get(key)
        if seen is None:
            seen = self.seen[key] = await self.read(key)
        self.watchers.setdefault(key, {})[sub] = None
        return seen

    async def leave(self, sub: Watcher, key: StreamKey) -> None:
        """`sub` no longer follows `key` (unsubscribed, dropped or closed)."""
        watchers = self.watchers.get(key)
        if watchers is not None:
            watchers.pop(sub, None)
            if not watchers:
                del self.watchers[key]
                self.seen.pop(key, None)
        followers = self.followers.get(key, {})
        member = followers.pop(sub, None)
        if not followers:
            self.followers.pop(key, None)
        if member is not None:
            try:
                await self.backend.presence_leave(key, member)
            except Exception:
                logger.warning(
                    "Could not remove a follower from presence; it expires by itself", exc_info=True
                )

    async def read(self, key: StreamKey) -> Seen:
        """The followers of `key` across workers, now."""
        version = await self.backend.presence_version(key)
        members = await self.backend.presence_members(key)
        return Seen(version, Counter(label_of(member) for member in members), len(members))

    # The worker duty (once a second) ---------------------------------------------------------

    async def tick(self, worker: object) -> None:
        """Refresh this worker's entries when due, then send the diffs of the watched streams."""
        now = time.monotonic()
        if now >= self.next_refresh:
            self.next_refresh = now + streaming_settings.PRESENCE_TTL / 3
            await self.refresh()
        for key in list(self.watchers):
            await self.diff(key)

    async def refresh(self) -> None:
        """Keep this worker's followers counted (a service whose presence was switched off lapses)."""
        entries = [
            (key, member)
            for key, followers in self.followers.items()
            if stream_options(key[0]).shares_presence
            for member in followers.values()
        ]
        if entries:
            await self.backend.presence_refresh(entries, streaming_settings.PRESENCE_TTL)

    async def diff(self, key: StreamKey) -> None:
        """One `presence` diff to the watchers of `key` if its followers changed since the last."""
        before = self.seen.get(key)
        if before is None or await self.backend.presence_version(key) == before.version:
            return
        after = self.seen[key] = await self.read(key)
        joined = sorted(after.labels.keys() - before.labels.keys())
        left = sorted(before.labels.keys() - after.labels.keys())
        if after.count == before.count and not joined and not left:
            return
        users = stream_options(key[0]).shares_users
        message = messages.presence_diff(*key, after.count, *((joined, left) if users else (None, None)))
        for watcher in list(self.watchers.get(key, ())):
            watcher.send_message(message)
