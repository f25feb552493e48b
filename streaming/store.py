"""The configured history store: Redis when STREAMING['REDIS_URL'] is set, in-process otherwise."""

from __future__ import annotations

from streaming.conf import streaming_settings
from streaming.history import MemoryHistory, memory_history
from streaming.redis_history import RedisHistory

_redis: dict[tuple[str, str], RedisHistory] = {}


def get_store() -> RedisHistory | MemoryHistory:
    url = streaming_settings.REDIS_URL
    if not url:
        return memory_history
    key = (url, streaming_settings.REDIS_PREFIX)
    store = _redis.get(key)
    if store is None:
        store = _redis[key] = RedisHistory(url, streaming_settings.REDIS_PREFIX)
    return store
