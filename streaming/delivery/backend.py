"""The one storage and announcement backend of this process, chosen once from settings.

A backend numbers and keeps each stream's events, announces them to every worker's hub, counts
each owner's connections across workers, knows who follows each stream (presence) and remembers
which session a token last closed. The
embedded default keeps all of it in this process (`memory_backend`); production keeps it in Redis
(`redis_backend`). Callers hold a `Backend` and never ask which one it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

from streaming.conf import streaming_settings
from streaming.delivery.history import Appended, Replay, StreamKey

if TYPE_CHECKING:
    from streaming.delivery.hub import Hub

MEMORY = "streaming.delivery.memory_backend.MemoryBackend"
REDIS = "streaming.delivery.redis_backend.RedisBackend"

#: How long a closed session is remembered for the "resumed from" of the next one (seconds).
RESUME_MEMORY_SECONDS = 600


class Backend(ABC):
    """History, announcements, per-owner connection slots and resume memory."""

    #: "memory" or "redis": for status pages only, never for branching.
    kind = ""

    # Events ----------------------------------------------------------------------------------

    @abstractmethod
    def append(self, key: StreamKey, data_json: str) -> Appended:
        """Number, store and announce one event; callable from any thread."""

    @abstractmethod
    async def aappend(self, key: StreamKey, data_json: str) -> Appended:
        """`append` for code running on the worker's event loop."""

    @abstractmethod
    async def replay(
        self, key: StreamKey, since_epoch: str | None, since_seq: int, max_bytes: int = 0
    ) -> Replay:
        """The stream's head and, when `since_epoch` is given and still covered, the missed frames.

        With `max_bytes`, missed frames that would add up to more are not read: the answer is then
        "not recoverable" (refetch), as when history no longer holds them.
        """

    # Announcements to this worker's hub ------------------------------------------------------

    @abstractmethod
    def attach(self, hub: Hub) -> None:
        """Deliver announcements of the streams `listen` asked for to `hub`."""

    @abstractmethod
    async def listen(self, key: StreamKey) -> None:
        """Start receiving announcements of `key` (returns once they are flowing)."""

    @abstractmethod
    async def unlisten(self, key: StreamKey) -> None:
        """Stop receiving announcements of `key`."""

    def reaches_subscribers(self) -> bool:
        """Whether an event published from this process now reaches the servers' subscribers."""
        return True

    async def serve_other_processes(self) -> None:  # noqa: B027 - shared backends need no relay
        """Called when this process starts serving: accept publishes from other local processes."""

    # Connections per owner across workers ----------------------------------------------------

    @abstractmethod
    async def take_slot(self, owner: str, session_id: str, cap: int, ttl: float) -> bool:
        """Count `session_id` against `owner`'s cap unless it is reached; entries expire after `ttl`."""

    @abstractmethod
    async def release_slot(self, owner: str, session_id: str) -> None:
        """Stop counting `session_id`."""

    @abstractmethod
    async def refresh_slots(self, slots: list[tuple[str, str]], ttl: float) -> None:
        """Keep these (owner, session) entries counted for another `ttl` seconds."""

    # Presence: who follows each stream, across workers ----------------------------------------
    # A member is "<session id>:<label>"; entries expire unless their worker refreshes them.

    @abstractmethod
    async def presence_join(self, key: StreamKey, member: str, ttl: float) -> None:
        """Count `member` among the followers of `key` for `ttl` seconds."""

    @abstractmethod
    async def presence_leave(self, key: StreamKey, member: str) -> None:
        """Stop counting `member` among the followers of `key`."""

    @abstractmethod
    async def presence_refresh(self, members: list[tuple[StreamKey, str]], ttl: float) -> None:
        """Keep these (stream, member) entries counted for another `ttl` seconds."""

    @abstractmethod
    async def presence_version(self, key: StreamKey) -> int:
        """A number that changes whenever the followers of `key` change (expired ones dropped first)."""

    @abstractmethod
    async def presence_members(self, key: StreamKey) -> list[str]:
        """The live followers of `key`."""

    # Resume memory ---------------------------------------------------------------------------

    @abstractmethod
    async def remember_closed(self, checksum: str, session_id: str) -> None:
        """Remember that the session of this token checksum closed."""

    @abstractmethod
    async def previous_session(self, checksum: str) -> str:
        """The session last closed with this token checksum, or "" (none, or too long ago)."""

    # Stale-ticket marks -----------------------------------------------------------------------

    @abstractmethod
    def mark_stale(self, mark: str, at: float, keep: float) -> None:
        """Record that tickets of `mark` issued before `at` are stale, for `keep` s; any thread."""

    @abstractmethod
    async def stale_marks(self) -> dict[str, float]:
        """Every mark recorded in the last `keep` seconds and when it was set."""

    # Lifecycle -------------------------------------------------------------------------------

    async def ping(self) -> None:  # noqa: B027 - an in-process backend is always reachable
        """Raise when the backend cannot be reached (readiness)."""

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release this worker's connections."""

    def describe(self) -> dict[str, Any]:
        """What the backend is, for status pages and metrics."""
        return {"kind": self.kind}

    async def topology(self) -> dict[str, Any]:
        """The servers behind the backend as this process sees them now ({} when in-process)."""
        return {}


_backends: dict[tuple[str, str, str], Backend] = {}


def backend_path() -> str:
    return streaming_settings.BACKEND or (REDIS if streaming_settings.REDIS_URL else MEMORY)


def get_backend() -> Backend:
    """The configured backend (one per dotted path, Redis URL and key prefix)."""
    key = (backend_path(), streaming_settings.REDIS_URL, streaming_settings.REDIS_PREFIX)
    backend = _backends.get(key)
    if backend is None:
        backend = _backends[key] = import_string(key[0])()
    return backend
