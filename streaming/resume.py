"""Which earlier session a reconnecting client resumes: the last one closed with the same token.

A client that reconnects and resubscribes with `since` (recovered) continues a session that ended,
usually on another worker. Each closed session leaves its id under its token's checksum for
RESUME_MEMORY_SECONDS (in Redis, so every worker sees it; in-process in embedded mode); the admin
shows it as "resumed from".
"""

from __future__ import annotations

import time

from streaming.conf import streaming_settings
from streaming.worker import Worker

RESUME_MEMORY_SECONDS = 600

_local: dict[str, tuple[float, str]] = {}


def _key(checksum: str) -> str:
    return f"{streaming_settings.REDIS_PREFIX}:lastsession:{checksum}"


async def remember_closed(worker: Worker, checksum: str, session_id: str) -> None:
    if streaming_settings.REDIS_URL:
        await worker.redis_client().set(_key(checksum), session_id, ex=RESUME_MEMORY_SECONDS)
    else:
        _local[checksum] = (time.monotonic(), session_id)


async def previous_session(worker: Worker, checksum: str) -> str:
    """The id of the session last closed with this token, or "" when there is none (or too old)."""
    if streaming_settings.REDIS_URL:
        found = await worker.redis_client().get(_key(checksum))
        return found.decode() if found else ""
    at, session_id = _local.get(checksum, (0.0, ""))
    return session_id if time.monotonic() - at < RESUME_MEMORY_SECONDS else ""
